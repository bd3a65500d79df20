"""Stage 2a and 2b: the LA network Gl trained alone (``gl_warmup_epochs``), then the scar path Ga + Gs on the frozen
Gl (``scar_warmup_epochs``), before the joint JAS-GAN training.

In the joint iteration Gl is about a quarter of the cost (the adaptive attention Ga, the full-resolution residual
network Gs and the discriminator T take the rest), so on a CPU budget Gl sees few updates and the LA, which every
later part depends on, stays under-trained. Training Gl first on the same patches with the LA term of Eq. 5
(:class:`~bundle.training.losses.LALoss`) gives it about three times the updates per minute; the joint training then
starts from that Gl. It is a schedule, not a change of the objective: the paper's RN+LA variant likewise starts from
a trained EDN.

The scar path gets the same treatment (:func:`warm_up_scar`): in the joint training Gs sees only the joint epochs,
and on scans whose contrast differs from the common LGE look it stays under-trained (the scar of whole scans is
missed, not under-thresholded: README "Training JAS-GAN"). With Gl frozen an iteration costs about half a joint one.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from monai.engines import SupervisedTrainer
from monai.handlers import StatsHandler, TensorBoardStatsHandler, from_engine

from bundle.training.distributed import unwrap
from bundle.training.losses import LALoss, ScarLoss

logger = logging.getLogger(__name__)


def _trainer(network: torch.nn.Module, parameters: Any, loss: torch.nn.Module, data_loader: Any, epochs: int,
             learning_rate: float, device: torch.device | str, tag: str, log_dir: str | None,
             log_interval: int) -> SupervisedTrainer:
    """A plain supervised trainer of ``parameters`` (Adam) that logs its loss under ``tag``."""
    handlers: list = [StatsHandler(tag_name=tag, output_transform=from_engine(["loss"], first=True),
                                   iteration_log=lambda engine, event: event % log_interval == 0)]
    if log_dir is not None:
        handlers.append(TensorBoardStatsHandler(log_dir=log_dir, tag_name=tag,
                                                output_transform=from_engine(["loss"], first=True)))
    return SupervisedTrainer(device=torch.device(device), max_epochs=epochs, train_data_loader=data_loader,
                             network=network, optimizer=torch.optim.Adam(parameters, lr=learning_rate),
                             loss_function=loss, train_handlers=handlers)


def _cascade(network: torch.nn.Module, option: str) -> torch.nn.Module:
    """The cascade inside ``network`` (a DDP wrapper or not), refused for ``option`` (the config key of the warm-up)
    without an LA network Gl or under torchrun."""
    cascade = unwrap(network)
    if getattr(cascade, "gl", None) is None:
        raise ValueError(f"{option}: {type(cascade).__name__} has no LA network Gl (.gl) to warm up; set {option}: 0")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        raise ValueError(f"{option} is not supported under torchrun (each rank would train its own copy); set "
                         f"{option}: 0 (configs/multi_gpu_train.yaml does)")
    return cascade


class FrozenLAScarPath(torch.nn.Module):
    """The cascade's scar path on a frozen Gl: ``forward(image)`` -> (B, 2, H, W) [LA, scar] logits with the LA
    computed in eval mode without gradient, so only Ga and Gs learn (and Gl's batch statistics stay put)."""

    def __init__(self, cascade: torch.nn.Module):
        super().__init__()
        self.cascade = cascade

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        net = self.cascade
        net.gl.eval()
        with torch.no_grad():
            la = net.gl(image)
        return torch.cat([la, net.gs(net.scar_input(image, torch.sigmoid(la)))], dim=1)


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
    gl = _cascade(network, "gl_warmup_epochs").gl
    trainer = _trainer(gl, gl.parameters(), LALoss(dice=la_dice), data_loader, epochs, learning_rate, device,
                       "gl_warmup_loss", log_dir, log_interval)
    logger.info("stage 2a: Gl alone for %d epochs of %d iterations", epochs, len(data_loader))
    trainer.run()
    return epochs


def warm_up_scar(
    network: torch.nn.Module,
    data_loader: Any,
    epochs: int,
    learning_rate: float,
    device: torch.device | str,
    log_dir: str | None = None,
    log_interval: int = 10,
) -> int:
    """Train the scar path (Ga and Gs) of ``network`` for ``epochs`` epochs of ``data_loader`` on its frozen Gl
    (Adam at ``learning_rate``, the scar term of Eq. 5 with cross-entropy: :class:`~bundle.training.losses.ScarLoss`);
    returns the epochs run (0: nothing to do).

    Raises:
        ValueError: ``epochs`` > 0 for a network without Gl and Gs, or under ``torchrun``.
    """
    epochs = int(epochs)
    if epochs <= 0:
        return 0
    cascade = _cascade(network, "scar_warmup_epochs")
    parameters = [p for name, p in cascade.named_parameters() if not name.startswith("gl.")]
    trainer = _trainer(FrozenLAScarPath(cascade), parameters, ScarLoss(), data_loader, epochs, learning_rate, device,
                       "scar_warmup_loss", log_dir, log_interval)
    logger.info("stage 2b: Ga and Gs on the frozen Gl for %d epochs of %d iterations", epochs, len(data_loader))
    trainer.run()
    cascade.train()
    return epochs
