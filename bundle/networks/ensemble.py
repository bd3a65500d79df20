"""Several trained networks as one: the fold ensemble of cross-validation (nnU-Net's way of predicting with its five
folds), for stage 1 and stage 2 alike."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

LOGIT_EPSILON = 1e-6
"""Probabilities are clamped to [eps, 1 - eps] before they are turned back into logits (logit(1e-6) = -13.8)."""


class ProbabilityAverage(nn.Module):
    """The mean of the members' sigmoid probabilities, returned as logits so that everything downstream (the
    inferers' sigmoid and 0.5 threshold) treats the ensemble as one network: ``logit(mean_k sigmoid(f_k(x)))``."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one network")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probabilities = torch.stack([torch.sigmoid(member(x).float()) for member in self.members]).mean(0)
        return torch.logit(probabilities, eps=LOGIT_EPSILON)
