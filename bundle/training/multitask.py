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
from torch import nn
from torch.optim import Optimizer

from bundle.training.distributed import training_module
from bundle.training.trainer import SegmentationTrainer

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


class MultiTaskTrainer(SegmentationTrainer):
    """One step of L = L_S + lambda L_C per batch for a :class:`~bundle.networks.MultiTaskUNet`.

    :class:`~bundle.training.trainer.SegmentationTrainer`'s engine (data, handlers, checkpoints, logging, mixed
    precision, gradient averaging) with this iteration. ``network`` is the network's
    :meth:`~bundle.networks.MultiTaskUNet.training_module` (or a DDP wrapper of it), whose forward gives both
    outputs (a plain :class:`~bundle.networks.MultiTaskUNet` is wrapped here). The batch's ``ablation`` entries give
    the class targets. Logged: ``loss``, ``seg_loss`` (= ``ce_la``, L_S) and ``class_loss`` (L_C).

    It trains without the joint discriminator: ``discriminator`` and ``d_optimizer`` (which the training config
    passes to every trainer) must be None, and ``adv_weight`` has no term to weigh.
    """

    logged_terms = ("seg_loss", "ce_la", "class_loss")

    def __init__(self, device: str | torch.device, max_epochs: int, train_data_loader: Any, network: nn.Module,
                 optimizer: Optimizer, loss_function: nn.Module, discriminator: nn.Module | None = None,
                 d_optimizer: Optimizer | None = None, adv_weight: float = 0.0, **kwargs: Any) -> None:
        if discriminator is not None or d_optimizer is not None:
            raise ValueError("the multi-task U-Net trains without the joint discriminator: set use_discriminator: false")
        super().__init__(device, max_epochs, train_data_loader, training_module(network), optimizer, loss_function,
                         **kwargs)

    def _iteration(self, engine: MultiTaskTrainer, batchdata: dict) -> dict:
        image, target = engine._inputs(engine, batchdata)
        post = ablation_targets(batchdata.get("ablation", ["unknown"] * image.shape[0]), image.device)
        with engine.autocast():
            pred, class_logit = engine.network(image)
        pred, class_logit = pred.float(), class_logit.float()
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss, seg, cls = engine.loss_function(pred, target, class_logit, post)
        engine._network_step(engine, loss)
        return engine._report(engine, pred, loss, {"seg_loss": seg, "ce_la": seg, "class_loss": cls})
