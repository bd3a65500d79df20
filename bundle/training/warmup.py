"""Stage 2a: the LA network Gl trained alone before the joint JAS-GAN training (``gl_warmup_epochs``).

In the joint iteration Gl is about a quarter of the cost (the adaptive attention Ga, the full-resolution residual
network Gs and the discriminator T take the rest), so on a CPU budget Gl sees few updates and the LA, which every
later part depends on, stays under-trained. Training Gl first on the same patches with the LA term of Eq. 5
(:class:`~bundle.training.losses.LALoss`) gives it about three times the updates per minute; the joint training then
starts from that Gl. It is a schedule, not a change of the objective: the paper's RN+LA variant likewise starts from
a trained EDN.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.handlers import StatsHandler, TensorBoardStatsHandler, from_engine

from bundle.training.distributed import unwrap
from bundle.training.losses import LALoss

logger = logging.getLogger(__name__)


def warm_up_la(
    network: torch.nn.Module,
    data_loader: Any,
    epochs: int,
    learning_rate: float,
    device: torch.device | str,
    log_dir: str | None = None,
    log_interval: int = 10,
    la_dice: bool = True,
) -> int:
    """Train ``network.gl`` alone for ``epochs`` epochs of ``data_loader`` (Adam at ``learning_rate``, the LA term
    of Eq. 5: cross-entropy, plus Dice with ``la_dice``); returns the epochs run (0: nothing to do).

    Raises:
        ValueError: ``epochs`` > 0 for a network without an LA network ``gl`` (the multi-task U-Net), or under
            ``torchrun`` (each rank would train its own Gl).
    """
    epochs = int(epochs)
    if epochs <= 0:
        return 0
    gl = getattr(unwrap(network), "gl", None)
    if gl is None:
        raise ValueError(f"gl_warmup_epochs: {type(unwrap(network)).__name__} has no LA network Gl (.gl) to warm "
                         "up; set gl_warmup_epochs: 0")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        raise ValueError("gl_warmup_epochs is not supported under torchrun (each rank would train its own Gl); set "
                         "gl_warmup_epochs: 0 (configs/multi_gpu_train.yaml does)")
    handlers: list = [StatsHandler(tag_name="gl_warmup_loss", output_transform=from_engine(["loss"], first=True),
                                   iteration_log=lambda engine, event: event % log_interval == 0)]
    if log_dir is not None:
        handlers.append(TensorBoardStatsHandler(log_dir=log_dir, tag_name="gl_warmup_loss",
                                                output_transform=from_engine(["loss"], first=True)))
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=epochs,
        train_data_loader=data_loader,
        network=gl,
        optimizer=torch.optim.Adam(gl.parameters(), lr=learning_rate),
        loss_function=LALoss(dice=la_dice),
        train_handlers=handlers,
    )
    logger.info("stage 2a: Gl alone for %d epochs of %d iterations", epochs, len(data_loader))
    trainer.run()
    return epochs
