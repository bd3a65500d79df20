"""Contrast randomisation of training patches: a random, non-monotone intensity curve.

SynthSeg (Billot et al., Medical Image Analysis 2023) draws every tissue class a random intensity, so a network
cannot lean on one contrast and meets unseen intensity models as one more draw. Without tissue maps at training
time, a random piecewise-linear curve over the image's intensity range does much the same for tissues that differ in
intensity: each of its control points, evenly spaced from the 0.5th to the 99.5th percentile, gets an independent
uniform value in that range, so tissues far apart in intensity get unrelated new intensities and may swap their
order (blood darker than fat), while a tissue keeps one intensity. MONAI's ``RandHistogramShift`` draws monotone
curves (the order never changes) and ``RandIntensityRemap`` samples one value per distinct intensity (noise for
float images), hence this transform.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

PERCENTILES = (0.5, 99.5)
"""The intensity range the curve spans (outside it the curve's end values hold)."""


def intensity_curve(image: np.ndarray, values: Sequence[float]) -> np.ndarray:
    """``image`` through the piecewise-linear curve whose control points, evenly spaced over its
    :data:`PERCENTILES` range, map to ``values`` (fractions of that range); rescaled to the image's own mean and
    standard deviation, so a z-scored patch stays z-scored."""
    image = np.asarray(image, np.float32)
    lo, hi = np.percentile(image, PERCENTILES)
    if not hi > lo:
        return image.copy()
    xp = np.linspace(lo, hi, len(values))
    out = np.interp(image, xp, lo + np.asarray(values, np.float64) * (hi - lo)).astype(np.float32)
    sd = float(out.std())
    if sd <= 1e-6:
        return np.full_like(image, float(image.mean()))
    return ((out - out.mean()) / sd * float(image.std()) + float(image.mean())).astype(np.float32)


class RandIntensityCurved(RandomizableTransform, MapTransform):
    """With probability ``prob``, pass ``keys`` through a random non-monotone intensity curve of ``points`` (a range,
    both ends included) control points (:func:`intensity_curve`); the same curve for every key of one sample."""

    def __init__(self, keys: KeysCollection, prob: float = 0.1, points: Sequence[int] = (6, 12),
                 allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if len(points) != 2 or not 2 <= points[0] <= points[1]:
            raise ValueError(f"points must be a range (low, high) with 2 <= low <= high, got {points}")
        self.points = (int(points[0]), int(points[1]))
        self._values: np.ndarray | None = None

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        if self._do_transform:
            n = self.R.randint(self.points[0], self.points[1] + 1)
            self._values = self.R.uniform(0.0, 1.0, n)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            image = d[key]
            out = intensity_curve(image.cpu().numpy() if isinstance(image, torch.Tensor) else image, self._values)
            d[key] = torch.as_tensor(out) if isinstance(image, torch.Tensor) else out
        return d
