"""Training the multi-task U-Net (Chen et al., STACOM 2018): L = L_S + lambda L_C (their Sec. 2.1).

L_S is the pixel-wise cross-entropy of the LA (two classes, i.e. a binary cross-entropy of the LA
logit); L_C the sigmoid cross-entropy of the slice's pre/post-ablation label (1 = post), lambda = 1.
Slices of scans whose ablation state is unknown add no classification term.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn

from bundle.training.distributed import training_module
from bundle.training.trainer import JasGanTrainer

ABLATION_TARGETS = {"post": 1.0, "pre": 0.0}
"""Classification target of each ablation state; any other state (``unknown``) has none."""


def ablation_targets(states: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
    """(B,) float targets of a batch's ablation states: 1 post, 0 pre, NaN unknown."""
    return torch.tensor([ABLATION_TARGETS.get(str(s), float("nan")) for s in states], device=device)


class MultiTaskLoss(nn.Module):
    """L = CE(LA) + ``class_weight`` * BCE(post-ablation) (Chen et al. 2018; ``class_weight`` = lambda = 1)."""

    def __init__(self, class_weight: float = 1.0) -> None:
        super().__init__()
        self.class_weight = float(class_weight)

    def forward(self, seg_logits: torch.Tensor, target: torch.Tensor, class_logit: torch.Tensor,
                post: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(total, segmentation, classification)`` for [LA, scar] logits and targets, the (B,) class logit
        and the (B,) ablation targets of :func:`ablation_targets` (NaN entries left out)."""
        seg = F.binary_cross_entropy_with_logits(seg_logits[:, :1], target[:, :1])
        known = torch.isfinite(post)
        cls = (F.binary_cross_entropy_with_logits(class_logit[known], post[known]) if bool(known.any())
               else seg.new_zeros(()))
        return seg + self.class_weight * cls, seg, cls


class MultiTaskTrainer(JasGanTrainer):
    """One step of L = L_S + lambda L_C per batch for a :class:`~bundle.networks.MultiTaskUNet`.

    It is :class:`~bundle.training.trainer.JasGanTrainer`'s engine (data, handlers, checkpoints, logging, mixed
    precision, gradient averaging) with no discriminator; only the iteration differs. ``network`` is the
    network's :meth:`~bundle.networks.MultiTaskUNet.training_module` (or a DDP wrapper of it), whose forward
    gives both outputs (a plain :class:`~bundle.networks.MultiTaskUNet` is wrapped here). The batch's
    ``ablation`` entries give the class targets.
    """

    def __init__(self, device: str | torch.device, max_epochs: int, train_data_loader: Any, network: nn.Module,
                 *args: Any, **kwargs: Any) -> None:
        super().__init__(device, max_epochs, train_data_loader, training_module(network), *args, **kwargs)

    def _iteration(self, engine: MultiTaskTrainer, batchdata: dict) -> dict:
        image, target = engine._inputs(engine, batchdata)
        post = ablation_targets(batchdata.get("ablation", ["unknown"] * image.shape[0]), image.device)
        with engine.autocast():
            pred, class_logit = engine.network(image)
        pred, class_logit = pred.float(), class_logit.float()
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss, seg, cls = engine.loss_function(pred, target, class_logit, post)
        engine._generator_step(engine, loss)
        engine.state.output.update({
            Keys.PRED: pred.detach(), Keys.LOSS: loss.detach(), "seg_loss": seg.item(), "ce_la": seg.item(),
            "class_loss": cls.item(),
        })
        return engine.state.output
