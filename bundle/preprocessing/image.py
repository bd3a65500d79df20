"""One scan as the networks see it: turned nowhere, resampled in-plane to the plan's spacing, z-scored per volume.
"""

from __future__ import annotations

import math
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


def resample_box_in_plane(
    array: np.ndarray, box: Sequence[slice], spacing: Sequence[float], target_xy: Sequence[float],
    shape_zyx: Sequence[int], interpolator: int = sitk.sitkLinear, out: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`resample_in_plane` back to a scan's grid of ``shape_zyx`` for a (z, y, x) ``array`` that is 0
    outside ``box`` (z, y, x slices): only the box's slices and the in-plane points its voxels (and their zero
    neighbours) reach are resampled, and everything else is 0, as it is in the whole resampled array.

    With a whole scan's few-percent ROI this is a fraction of the cost of resampling the whole field of view. The
    grids share their first voxel centre; past the array's last sample the nearest value is taken, as
    :func:`resample_in_plane` does with ``size_xy``. ``out``: a zero float32 array of ``shape_zyx`` to write into
    (only the box's part of it is touched, so the pages of a fresh ``np.zeros`` elsewhere are never written).
    """
    if out is None:
        out = np.zeros(tuple(int(n) for n in shape_zyx), np.float32)
    elif out.shape != tuple(int(n) for n in shape_zyx) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {tuple(shape_zyx)}, got {out.dtype} {out.shape}")
    (z0, z1), lo, hi = (int(box[0].start), int(box[0].stop)), [], []
    for sl, n_in, n_out, s_in, s_out in zip(box[1:], array.shape[1:], out.shape[1:], (spacing[1], spacing[0]),
                                             (target_xy[1], target_xy[0])):  # y, then x
        a, b = max(0, int(sl.start) - 1), min(n_in, int(sl.stop) + 1)  # the box and the zero voxel on each side
        ratio = float(s_in) / float(s_out)
        first = math.ceil(a * ratio - 1e-9)  # the first output point at or past the source's first voxel
        last = n_out if b == n_in else min(n_out, math.floor((b - 1) * ratio + 1e-9) + 1)
        lo.append((a, first))
        hi.append((b, max(first, last)))
    (ya, yf), (xa, xf) = lo
    (yb, yl), (xb, xl) = hi
    if z1 <= z0 or yl <= yf or xl <= xf:
        return out
    image = sitk.GetImageFromArray(np.ascontiguousarray(array[z0:z1, ya:yb, xa:xb], dtype=np.float32))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin((xa * float(spacing[0]), ya * float(spacing[1]), 0.0))
    resampler = sitk.ResampleImageFilter()
    resampler.SetSize([xl - xf, yl - yf, z1 - z0])
    resampler.SetOutputSpacing((float(target_xy[0]), float(target_xy[1]), float(spacing[2])))
    resampler.SetOutputOrigin((xf * float(target_xy[0]), yf * float(target_xy[1]), 0.0))
    resampler.SetInterpolator(interpolator)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetUseNearestNeighborExtrapolator(True)
    out[z0:z1, yf:yl, xf:xl] = sitk.GetArrayFromImage(resampler.Execute(image))
    return out


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
