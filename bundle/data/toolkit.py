"""The Cardiac MRI Toolkit's LA wall and automatic scar rules (CARMA, University of Utah).

Both reproduce the toolkit's own test baselines voxel for voxel (see ``tests/test_toolkit.py``):

- **Wall**: the endocardium dilated slice by slice with an ITK ball of radius 4 voxels in the
  axial plane (``BinaryDilate(image, [4, 4, 0], sitkBall)``), minus the endocardium.
- **Scar** (Perry et al., SPIE Medical Imaging 2012): the LGE intensities of the wall and the
  endocardium, z-normalised, clustered by 1-D k-means with K = 4 (initial centres at the middles
  of the four equal sub-ranges of [min, max]); scar is the wall voxels of the brightest cluster
  present in the wall.

Arrays are in SimpleITK's ``(z, y, x)`` order, so the third axis of the ITK radius is z.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

DILATION_RADIUS_VOXELS = 4
"""In-plane radius (voxels) of the toolkit's axial ball dilation; no dilation along z."""

KMEANS_K = 4
"""Number of intensity clusters of the toolkit's automatic scar rule."""

KMEANS_MAX_ITER = 1000
"""Safety cap on k-means iterations (the baselines converge in a few dozen)."""

REFERENCE = (
    "Perry D, et al. Automatic classification of scar tissue in late gadolinium enhancement cardiac MRI "
    "for the assessment of left-atrial wall injury after radiofrequency ablation. "
    "Proc. SPIE 8315, Medical Imaging 2012."
)


def axial_dilate(mask: np.ndarray, radius: int = DILATION_RADIUS_VOXELS) -> np.ndarray:
    """Slice-wise dilation of a binary ``(z, y, x)`` mask (> 0) with an in-plane ball of ``radius`` voxels."""
    binary = sitk.GetImageFromArray((np.asarray(mask) > 0).astype(np.uint8))
    dilated = sitk.BinaryDilate(binary, [int(radius), int(radius), 0], sitk.sitkBall, 0.0, 1.0, False)
    return sitk.GetArrayFromImage(dilated) > 0


def toolkit_wall(endo: np.ndarray, radius: int = DILATION_RADIUS_VOXELS) -> np.ndarray:
    """LA wall of the toolkit: the axially dilated endocardium minus the endocardium."""
    endo = np.asarray(endo) > 0
    return axial_dilate(endo, radius) & ~endo


def kmeans_1d(values: np.ndarray, k: int = KMEANS_K, max_iter: int = KMEANS_MAX_ITER) -> tuple[np.ndarray, np.ndarray]:
    """Plain 1-D k-means; returns ``(centres, assignment)``.

    Initial centres are the middles of the ``k`` equal sub-ranges of ``[min, max]``. Each value
    goes to its nearest centre (the lower index on ties), each centre moves to its cluster's mean
    (an empty cluster keeps its centre), until the centres stop changing or ``max_iter`` passes.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.intp)
    lo, hi = float(values.min()), float(values.max())
    centres = lo + (np.arange(k) + 0.5) * (hi - lo) / k
    for _ in range(max_iter):
        assignment = np.argmin(np.abs(values[:, None] - centres[None, :]), axis=1)
        counts = np.bincount(assignment, minlength=k)
        sums = np.bincount(assignment, weights=values, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
        if np.array_equal(updated, centres):
            break
        centres = updated
    return centres, assignment


def kmeans_scar(image: np.ndarray, endo: np.ndarray, wall: np.ndarray, k: int = KMEANS_K) -> np.ndarray:
    """The toolkit's automatic scar: wall voxels in the brightest k-means cluster present in the wall.

    Intensities of wall OR endo voxels are z-normalised (mean, sample SD) and clustered with
    :func:`kmeans_1d`. An empty wall, fewer than two voxels, or constant intensities give no scar.
    """
    image = np.asarray(image)
    endo = np.asarray(endo) > 0
    wall = np.asarray(wall) > 0
    if not (image.shape == endo.shape == wall.shape):
        raise ValueError(f"shapes differ: image {image.shape}, endo {endo.shape}, wall {wall.shape}")
    scar = np.zeros(image.shape, dtype=bool)
    region = wall | endo
    values = image[region].astype(np.float64)
    if not wall.any() or values.size < 2:
        return scar
    if not np.all(np.isfinite(values)):
        raise ValueError("the image has non-finite intensities inside the LA")
    sd = values.std(ddof=1)
    if sd == 0:
        return scar
    centres, assignment = kmeans_1d((values - values.mean()) / sd, k)
    in_wall = wall[region]
    brightest = max(set(assignment[in_wall].tolist()), key=lambda c: centres[c])
    scar[region] = in_wall & (assignment == brightest)
    return scar


def protocol_description() -> dict:
    """JSON-able description of the toolkit's wall and scar protocol and its parameters."""
    return {
        "name": "Cardiac MRI Toolkit (CARMA) LA wall and automatic scar",
        "wall": {
            "method": "axial binary dilation of the LA endocardium minus the endocardium",
            "structuring_element": "ITK ball, slice by slice (radius 0 along z)",
            "radius_voxels": [DILATION_RADIUS_VOXELS, DILATION_RADIUS_VOXELS, 0],
            "implementation": "SimpleITK.BinaryDilate(endo, [4, 4, 0], sitkBall) - endo",
        },
        "scar": {
            "method": "1-D k-means of LGE intensities of wall and endocardium voxels",
            "normalisation": "z-score with mean and sample standard deviation (ddof=1)",
            "k": KMEANS_K,
            "initial_centres": "middles of the k equal sub-ranges of [min, max]",
            "stop": "centres no longer change",
            "max_iterations": KMEANS_MAX_ITER,
            "scar_rule": "wall voxels of the cluster with the highest centre among clusters present in the wall",
            "reference": REFERENCE,
        },
    }
