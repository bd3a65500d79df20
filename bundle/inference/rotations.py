"""Test-time augmentation of stage 2 by in-plane rotation: the mean of its probabilities over the slice turned by a
few angles and turned back (nnU-Net averages mirrored copies; this model is trained without mirroring, since the
anatomy keeps its sides, but with in-plane rotations of up to 30 degrees, the plan's ``augmentation`` decision).

A turned slice is resampled bilinearly about its centre, zero outside (the ROI's mean, as training's rotations pad
it); the network's probabilities are turned back the same way, and each pixel averages the copies that saw it (the
corners a turned copy did not cover are left to the others).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from bundle.networks.ensemble import LOGIT_EPSILON


DEFAULT_ROTATIONS_DEG = (-20.0, 0.0, 20.0)
"""configs/inference.yaml's and configs/train.yaml's ``tta_rotations_deg`` (and the inference benchmark's default)."""


def checked_angles(angles_deg: Sequence[float]) -> tuple[float, ...]:
    """``angles_deg`` as floats, refused (ValueError naming the config key) when empty, not finite or beyond 90
    degrees."""
    angles = tuple(float(a) for a in angles_deg)
    if not angles:
        raise ValueError("a rotation average needs at least one angle (tta_rotations_deg: null or [0] for one pass)")
    if any(not math.isfinite(a) or abs(a) > 90 for a in angles):
        raise ValueError(f"tta_rotations_deg: rotation angles must be finite and within +-90 degrees, got "
                         f"{list(angles_deg)}")
    return angles


def rotate(x: torch.Tensor, radians: float) -> torch.Tensor:
    """(B, C, H, W) turned by ``radians`` about the centre of the slice (bilinear, zero outside)."""
    c, s = math.cos(radians), math.sin(radians)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]], dtype=torch.float32, device=x.device)
    theta = theta[None].expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RotationAverage(nn.Module):
    """``network`` (logits of (B, C, H, W) slices) as the mean of its sigmoid probabilities over the slice turned by
    ``angles_deg`` and turned back, returned as logits so everything downstream (sigmoid, threshold 0.5) treats it as
    the network: ``logit(sum_k R_-a_k(m_k * sigmoid(f(R_a_k x))) / sum_k R_-a_k(m_k))`` with ``m_k`` the part of the
    slice copy k saw. An angle of 0 is the slice as it is."""

    def __init__(self, network: nn.Module | Callable, angles_deg: Sequence[float]) -> None:
        super().__init__()
        self.network = network
        self.radians = [math.radians(a) for a in checked_angles(angles_deg)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        seen: torch.Tensor | None = None
        ones = torch.ones_like(x[:, :1], dtype=torch.float32)
        for a in self.radians:
            if a == 0.0:
                prob, cover = torch.sigmoid(self.network(x).float()), ones
            else:
                covered = rotate(ones, a) > 0.5   # the part of the turned slice that holds the scan
                prob = torch.sigmoid(self.network(rotate(x, a)).float()) * covered
                prob, cover = rotate(prob, -a), rotate(covered.float(), -a)
            total = prob if total is None else total + prob
            seen = cover if seen is None else seen + cover
        mean = total / seen.clamp_min(1e-6)
        return torch.logit(mean.clamp(0.0, 1.0), eps=LOGIT_EPSILON)
