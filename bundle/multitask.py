"""Training the multi-task U-Net (Chen et al., STACOM 2018): L = L_S + lambda L_C (their Sec. 2.1).

L_S is the pixel-wise cross-entropy of the LA (two classes, i.e. a binary cross-entropy of the LA
logit); L_C the sigmoid cross-entropy of the slice's pre/post-ablation label (1 = post), lambda = 1.
Slices of scans whose ablation state is unknown add no classification term.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys
from torch import nn

from bundle.trainer import JasGanTrainer

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

    It is :class:`~bundle.trainer.JasGanTrainer`'s engine (data, handlers, checkpoints, logging) with no
    discriminator; only the iteration differs. The batch's ``ablation`` entries give the class targets.
    """

    def _iteration(self, engine: MultiTaskTrainer, batchdata: dict) -> dict:
        if batchdata is None:
            raise ValueError("must provide batch data for current iteration.")
        image, target = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking)
        image, target = torch.as_tensor(image), torch.as_tensor(target)
        post = ablation_targets(batchdata.get("ablation", ["unknown"] * image.shape[0]), image.device)
        engine.network.train()
        engine.state.output = {Keys.IMAGE: image, Keys.LABEL: target}
        pred, class_logit = engine.network.forward_tasks(image)
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        loss, seg, cls = engine.loss_function(pred, target, class_logit, post)
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        engine.state.output.update({
            Keys.PRED: pred.detach(), Keys.LOSS: loss.detach(), "seg_loss": seg.item(), "ce_la": seg.item(),
            "class_loss": cls.item(),
        })
        return engine.state.output
