"""Stage 1: find the LA in a whole scan on a coarse grid and return the region stage 2 segments.

The preprocessed scan (plan spacing in-plane, z-scored) is averaged down to the plan's localiser spacing (area
averaging, so noise does not alias), the 3D :class:`~bundle.networks.LocalizerNet` gives an LA probability per
coarse voxel, the largest connected component of ``p > 0.5`` is the LA, and its box plus the plan's margin, on the
fine grid, is the ROI (:mod:`bundle.preprocessing.roi`). A scan already cropped around the LA skips the network.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from bundle.planning.planner import coarse_shape
from bundle.preprocessing.roi import Roi, is_crop, roi_from_coarse_mask

logger = logging.getLogger(__name__)

__all__ = ["CROP", "NO_LA", "OK", "Localizer", "Location", "coarse_shape", "largest_component", "to_coarse"]

THRESHOLD = 0.5
"""Stage-1 probability above which a coarse voxel is LA."""

OK, CROP, NO_LA = "ok", "crop", "no_la"
"""How a scan was located: the LA was found, the scan is a crop (stage 1 skipped), or no LA was found."""


def to_coarse(volume: torch.Tensor | np.ndarray, spacing_xyz: Sequence[float], target_xyz: Sequence[float]) -> torch.Tensor:
    """A (z, y, x) volume (or mask, as float) averaged onto the coarse grid: (1, 1, z', y', x') float32.

    Area averaging (``F.interpolate(mode="area")``, adaptive average pooling) is the exact mean of the fine voxels
    under each coarse one, so neither noise nor thin structures alias.
    """
    x = torch.as_tensor(volume, dtype=torch.float32)
    x = x.reshape(1, 1, *x.shape[-3:])
    return F.interpolate(x, size=coarse_shape(x.shape[-3:], spacing_xyz, target_xyz), mode="area")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean 3D array (empty stays empty)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


@dataclass
class Location:
    """Stage 1's answer for one scan: ``status`` (:data:`OK`, :data:`CROP` or :data:`NO_LA`), the ROI on the
    preprocessed grid (None for :data:`NO_LA`), a sentence saying why, and the highest LA probability."""

    status: str
    roi: Roi | None
    detail: str
    max_probability: float = float("nan")


class Localizer:
    """Stage 1 with its plan: ``locate(volume, spacing)`` gives the ROI of a preprocessed (z, y, x) volume.

    Args:
        network: the trained :class:`~bundle.networks.LocalizerNet` (or its TorchScript).
        plan: the plan (its ``localizer`` and ``roi`` decisions).
        device: where the network runs.
    """

    def __init__(self, network: torch.nn.Module, plan: Mapping, device: str | torch.device = "cpu") -> None:
        decisions = plan["decisions"]
        loc, roi = decisions["localizer"]["value"], decisions["roi"]["value"]
        self.device = torch.device(device)
        self.network = network
        self.spacing = [float(s) for s in loc["spacing"]]
        self.downsampling = int(loc["downsampling"])
        self.margin_mm = float(roi["margin_mm"])
        self.multiple = int(roi["multiple"])
        self.crop_fov_mm = float(roi["crop_fov_mm"])

    @torch.no_grad()
    def probabilities(self, volume: torch.Tensor | np.ndarray, spacing_xyz: Sequence[float]) -> np.ndarray:
        """LA probability (z', y', x') on the coarse grid of a preprocessed (z, y, x) volume."""
        x = to_coarse(volume, spacing_xyz, self.spacing).to(self.device)
        size = x.shape[2:]
        pad = [(-n) % self.downsampling for n in size]  # edges replicated up to a multiple of the down-sampling
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate") if any(pad) else x
        was_training = getattr(self.network, "training", False)
        self.network.eval()
        logits = self.network(x)[0, 0, : size[0], : size[1], : size[2]]
        if was_training:
            self.network.train()
        return torch.sigmoid(logits.float()).cpu().numpy()

    def locate(self, volume: torch.Tensor | np.ndarray, spacing_xyz: Sequence[float]) -> Location:
        """Stage 1 on one preprocessed (z, y, x) volume of ``spacing_xyz`` (mm)."""
        shape = tuple(volume.shape[-3:])
        if is_crop(shape, spacing_xyz, self.crop_fov_mm):
            return Location(CROP, Roi.whole(shape), f"a crop around the LA (under {self.crop_fov_mm:g} mm wide): "
                                                    "stage 1 skipped")
        prob = self.probabilities(volume, spacing_xyz)
        mask = largest_component(prob > THRESHOLD)
        peak = float(prob.max()) if prob.size else 0.0
        roi = roi_from_coarse_mask(mask, shape, spacing_xyz, self.margin_mm, self.multiple)
        if roi is None:
            return Location(NO_LA, None, f"stage 1 found no LA (highest LA probability {peak:.2f} <= {THRESHOLD})",
                            peak)
        return Location(OK, roi, f"LA found: ROI {roi.shape} voxels (z, y, x), {100 * roi.fraction_of(shape):.1f} % "
                                 "of the scan", peak)


