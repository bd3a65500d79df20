"""2.5D input for the 2D stage-2 networks: each axial slice with the slices about ``neighbour_mm`` above and below.

The networks segment slice by slice; the bottom and roof of the LA, where a neighbouring blood pool looks the same
in one slice, are told apart by the slices next to them. The neighbours lie a fixed distance away in millimetres
(about 2.5 mm: the next slice of a 2.5 mm Utah scan, the fourth of a 0.625 mm 2018 scan), so the three channels
mean the same across grids; at the first and last slice of a scan the slice itself stands in for the missing one.
Training (:func:`bundle.training.datasets.training_slices`) and inference
(:class:`bundle.inference.two_stage.TwoStageInferer`) stack them the same way.
"""

from __future__ import annotations

import torch

def neighbour_offset(spacing_z: float, neighbour_mm: float) -> int:
    """Slices between a slice and its neighbours: ``neighbour_mm`` rounded to whole slices of ``spacing_z`` mm,
    at least one."""
    if spacing_z <= 0 or neighbour_mm <= 0:
        raise ValueError(f"slice spacing and neighbour distance must be positive, got {spacing_z} and {neighbour_mm}")
    return max(1, int(round(float(neighbour_mm) / float(spacing_z))))


def neighbour_indices(z: int, n_slices: int, offset: int) -> tuple[int, int, int]:
    """The slices (below, ``z``, above) ``offset`` apart in a scan of ``n_slices``, clamped to the scan."""
    return max(0, z - offset), z, min(n_slices - 1, z + offset)


def stack_neighbours(volume: torch.Tensor, offset: int, first: int = 0, stop: int | None = None) -> torch.Tensor:
    """(..., 1, Z, Y, X) -> (..., 3, stop - first, Y, X): for each slice ``first <= z < stop`` of the single channel,
    [slice z - offset, z, z + offset], clamped to the volume's Z slices."""
    if volume.shape[-4] != 1:
        raise ValueError(f"expected one channel to stack, got {volume.shape[-4]}")
    n = volume.shape[-3]
    stop = n if stop is None else stop
    z = torch.arange(first, stop, device=volume.device)
    below, above = (z - offset).clamp(0, n - 1), (z + offset).clamp(0, n - 1)
    return torch.cat([volume.index_select(-3, i) for i in (below, z, above)], dim=-4)
