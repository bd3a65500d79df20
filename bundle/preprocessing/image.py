"""One scan as the networks see it: turned nowhere, resampled in-plane to the plan's spacing, z-scored per volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from bundle.planning.fingerprint import moments


def resample_in_plane(
    array: np.ndarray, spacing: Sequence[float], target_xy: Sequence[float], interpolator: int,
    size_xy: Sequence[int] | None = None,
) -> np.ndarray:
    """Resample a (z, y, x) array in-plane to ``target_xy`` mm; z is untouched (2D axial networks).

    Both grids start at the same voxel centre. The new (x, y) size is the old extent over the new
    spacing, rounded, unless ``size_xy`` gives it (the way back to a scan's own grid, where points past
    the last sample take the nearest value instead of 0).
    """
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in spacing))
    size = image.GetSize()
    new_spacing = (float(target_xy[0]), float(target_xy[1]), float(spacing[2]))
    if size_xy is None:
        new_size = [max(1, round(size[i] * spacing[i] / new_spacing[i])) for i in range(2)] + [size[2]]
    else:
        new_size = [int(size_xy[0]), int(size_xy[1]), size[2]]
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize(new_size)
    resampler.SetOutputSpacing(new_spacing)
    resampler.SetOutputOrigin(image.GetOrigin())
    resampler.SetOutputDirection(image.GetDirection())
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetUseNearestNeighborExtrapolator(size_xy is not None)
    return sitk.GetArrayFromImage(resampler.Execute(image))


def normalize(image: np.ndarray, normalization: dict) -> np.ndarray:
    """Apply the plan's intensity normalisation (``zscore_per_volume``: the whole 3D volume, as JAS-GAN)."""
    scheme = normalization.get("scheme")
    if scheme != "zscore_per_volume":
        raise ValueError(f"unknown normalization scheme {scheme!r} in the plan (known: 'zscore_per_volume')")
    image = np.asarray(image, dtype=np.float32)
    mean, std = moments(image)  # float64 sums, no float64 copy of a whole scan
    out = image - np.float32(mean)
    out *= np.float32(1.0 / (std + float(normalization.get("epsilon", 1e-8))))
    if normalization.get("clip"):
        low, high = normalization["clip_bounds_zscore"]
        np.clip(out, low, high, out=out)
    return out


def preprocess_image(array: np.ndarray, spacing: Sequence[float], plan: dict) -> tuple[np.ndarray, tuple[float, ...]]:
    """A (z, y, x) scan resampled in-plane to the plan's spacing and normalised; returns (image, new spacing).

    Training and inference both go through here, so a scan is always seen the way the network was trained.
    """
    decisions = plan["decisions"]
    target = decisions["target_spacing"]["value"]
    spacing = tuple(float(s) for s in spacing)
    if not np.allclose(spacing[:2], target, rtol=1e-4, atol=1e-6):
        array = resample_in_plane(np.asarray(array, dtype=np.float32), spacing, target, sitk.sitkLinear)
        spacing = (float(target[0]), float(target[1]), spacing[2])
    return normalize(array, decisions["normalization"]["value"]), spacing
