"""Both stages on a preprocessed whole volume: stage 1 finds the ROI, stage 2 segments only its slices and pixels.

:class:`TwoStageInferer` is a MONAI ``Inferer``: validation during training (``SupervisedEvaluator``) and
inference (:class:`bundle.inference.segmenter.Segmenter`) run whole scans through it, so the validation Dice is the number a
user gets. Stage 2 sees the ROI z-scored with its own moments, as its training patches are. Outside the ROI the
[LA, scar] logits are :data:`BACKGROUND_LOGIT` (probability ~1e-13).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.inferers import Inferer, SliceInferer

from bundle.inference.localizer import CROP, Localizer, Location
from bundle.preprocessing.roi import Roi, roi_normalized

BACKGROUND_LOGIT = -30.0
"""Logit written outside the ROI: sigmoid(-30) ~ 1e-13, i.e. background."""


def _spacing(value: Any) -> list[float] | None:
    """Spacing (x, y, z) from a list, an array, or a collated (1, 3) tensor."""
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() != 3:
        raise ValueError(f"expected one (x, y, z) spacing, got {tuple(torch.as_tensor(value).shape)}")
    return [float(v) for v in t]


class TwoStageInferer(Inferer):
    """Stage 1 (``localizer``) then stage 2 (the ``network`` given at call time) on one (1, C, Z, Y, X) volume.

    Args:
        localizer: stage 1; None treats every volume as a crop (stage 2 on the whole volume).
        roi_inferer: how stage 2 runs on the ROI; default slice by slice along z, each ROI slice whole.
        batch_size: slices per forward pass of the default ``roi_inferer``.

    ``last_location`` holds stage 1's answer for the latest volume (its status, ROI and reason).
    """

    def __init__(self, localizer: Localizer | None = None, roi_inferer: Inferer | None = None,
                 batch_size: int = 8) -> None:
        super().__init__()
        self.localizer = localizer
        self.roi_inferer = roi_inferer or SliceInferer(roi_size=(-1, -1), spatial_dim=0, sw_batch_size=batch_size,
                                                       progress=False)
        self.last_location: Location | None = None

    def locate(self, inputs: torch.Tensor, spacing: Sequence[float] | None) -> Location:
        """Stage 1 on the first channel of a (1, C, Z, Y, X) volume."""
        shape = tuple(inputs.shape[-3:])
        if self.localizer is None or spacing is None:
            return Location(CROP, Roi.whole(shape), "no stage 1: the whole volume is segmented")
        return self.localizer.locate(inputs[0, 0], spacing)

    def segment_roi(self, inputs: torch.Tensor, network: Callable, roi: Roi) -> torch.Tensor:
        """Stage 2's logits (1, 2, *roi.shape) on the ROI of a (1, C, Z, Y, X) volume, z-scored with the ROI's own
        moments as in training (:func:`bundle.preprocessing.roi.roi_normalized`)."""
        return self.roi_inferer(roi_normalized(inputs, roi).contiguous(), network)

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, spacing: Any = None,
                 **kwargs: Any) -> torch.Tensor:
        """[LA, scar] logits (1, 2, Z, Y, X) of a volume of ``spacing`` (x, y, z) mm: stage 2 inside the ROI,
        :data:`BACKGROUND_LOGIT` outside it (and everywhere when stage 1 finds no LA)."""
        if inputs.shape[0] != 1:
            raise ValueError(f"one volume at a time, got a batch of {inputs.shape[0]}")
        location = self.locate(inputs, _spacing(spacing))
        self.last_location = location
        out = torch.full((1, 2, *inputs.shape[-3:]), BACKGROUND_LOGIT, dtype=inputs.dtype, device=inputs.device)
        if location.roi is not None:
            out[(..., *location.roi.slices)] = self.segment_roi(inputs, network, location.roi).to(out.dtype)
        return out
