"""The multi-task Deep U-Net of Chen, Bai and Rueckert (STACOM 2018), the LA method JAS-GAN compares with.

A 2D U-Net segments the LA; a classification branch on the encoder's features after the 4th max-pool
(spatial pyramid pooling, fully connected layers, dropout 0.5) tells pre- from post-ablation slices.
The loss is L = L_S + lambda L_C (pixel-wise cross-entropy plus sigmoid cross-entropy, lambda = 1,
Sec. 2.1 of that paper; :class:`bundle.training.multitask.MultiTaskLoss`). The classification only regularises
training: inference uses the segmentation alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bundle.networks.unet import LAUNet

__all__ = ["NO_SCAR_LOGIT", "MultiTaskUNet", "TaskOutputs"]

NO_SCAR_LOGIT = -30.0
"""The scar channel of a network that segments only the LA: sigmoid(-30) ~ 1e-13, i.e. no scar anywhere."""

CLASS_LEVEL = 4
"""Encoder stage whose features feed the classifier: after the 4th max-pool (or the deepest, if fewer)."""

SPP_BINS = (1, 2, 4)
"""Spatial pyramid pooling grid sizes: a fixed-length vector for any input size (He et al. 2015)."""


class MultiTaskUNet(nn.Module):
    """LA segmentation U-Net with an auxiliary pre/post-ablation classifier (Chen et al. 2018, Fig. 1).

    ``forward`` returns (B, 2, H, W) [LA logits, scar logits] like every generator of this bundle, the
    scar channel being the constant :data:`NO_SCAR_LOGIT` (this method segments no scar), so inference,
    validation and TorchScript export need nothing special. :meth:`forward_tasks` also returns the
    (B,) post-ablation logit for training; :meth:`training_module` is the module a trainer (and a
    ``DistributedDataParallel`` wrapper, which only sees ``forward``) calls for it. The paper's U-Net has 5 poolings; here ``widths`` (from the
    plan) sets the depth, as for JAS-GAN's Gl.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (32, 64, 128, 256, 512),
        norm: str | tuple = "batch",
        hidden: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.no_scar_logit = float(NO_SCAR_LOGIT)
        self.unet = LAUNet(in_channels, 1, widths, norm=norm)
        self.class_level = min(CLASS_LEVEL, len(self.unet.widths) - 1)
        features = self.unet.widths[self.class_level] * sum(b * b for b in SPP_BINS)
        self.pools = nn.ModuleList([nn.AdaptiveMaxPool2d(b) for b in SPP_BINS])
        self.classifier = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def _segmentation(self, skips: list[torch.Tensor]) -> torch.Tensor:
        la = self.unet.decode(skips)
        return torch.cat([la, torch.full_like(la, self.no_scar_logit)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, 2, H, W): [LA logits, constant no-scar logits]."""
        return self._segmentation(self.unet.encode(x))

    def forward_tasks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(segmentation logits (B, 2, H, W), post-ablation logit (B,))`` from one encoder pass."""
        skips = self.unet.encode(x)
        deep = skips[self.class_level]
        vector = torch.cat([pool(deep).flatten(1) for pool in self.pools], dim=1)
        return self._segmentation(skips), self.classifier(vector)[:, 0]

    def training_module(self) -> TaskOutputs:
        """This network seen through :class:`TaskOutputs`, whose ``forward`` is :meth:`forward_tasks`."""
        return TaskOutputs(self)


class TaskOutputs(nn.Module):
    """``forward`` = ``network.forward_tasks``: the multi-task U-Net as its trainer (and DDP) calls it."""

    def __init__(self, network: MultiTaskUNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.forward_tasks(x)
