"""The LA wall derived from an LA mask, and the scar burden (scar % of the LA wall).

The label map stores the LA epicardium (cavity + wall) but not the wall itself. The wall is
recovered as the LA minus its axial erosion: the mirror of the Cardiac MRI Toolkit's wall step
(endocardium dilated slice by slice with a ball of 4 voxels, i.e. 2.5 mm at 0.625 mm spacing).
Ground truth and prediction are quantified with this same rule, so the scar percentages compare.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from bundle.data.labels import la_mask, scar_mask

WALL_THICKNESS_MM = 2.5
"""Wall thickness of the toolkit's protocol: 4 voxels at 0.625 mm in-plane spacing."""


def wall_radius_voxels(spacing: Sequence[float], thickness_mm: float = WALL_THICKNESS_MM) -> int:
    """In-plane radius, in voxels, of the axial erosion that peels ``thickness_mm`` of wall."""
    in_plane = 0.5 * (float(spacing[0]) + float(spacing[1]))
    return max(1, int(round(thickness_mm / in_plane)))


def derived_wall(la: np.ndarray, spacing: Sequence[float], thickness_mm: float = WALL_THICKNESS_MM,
                 radius_voxels: int | None = None) -> np.ndarray:
    """LA wall of a binary LA mask ``(z, y, x)``: the LA minus its slice-wise axial erosion by ``thickness_mm``
    (or by ``radius_voxels`` in-plane voxels when given).

    The erosion treats the outside as background, so it runs on the LA's bounding box only (exact, and a whole scan
    costs what its LA's box does)."""
    la = np.asarray(la) > 0
    wall = np.zeros(la.shape, bool)
    box = ndimage.find_objects(la.astype(np.uint8))
    if not box:
        return wall
    r = int(radius_voxels) if radius_voxels is not None else wall_radius_voxels(spacing, thickness_mm)
    img = sitk.GetImageFromArray(la[box[0]].astype(np.uint8))
    eroded = sitk.GetArrayFromImage(sitk.BinaryErode(img, [r, r, 0], sitk.sitkBall, 0, 1, False))
    wall[box[0]] = la[box[0]] & (eroded == 0)
    return wall


def derived_cavity(label: np.ndarray, spacing: Sequence[float], radius_voxels: int | None = None) -> np.ndarray:
    """The LA cavity (blood pool) of a bundle label map ``(z, y, x)``: the LA minus its derived wall and its scar.

    The inverse of the toolkit's protocol (LA = cavity dilated by the wall): scoring a predicted LA against a
    dataset's cavity labels (the 2018 challenge's ``laendo``) compares blood pool with blood pool.
    ``radius_voxels``: the wall's in-plane width in voxels (the toolkit's 4, by which a layout made the LA of its
    cavity); None: :data:`WALL_THICKNESS_MM` on this grid (the same 4 voxels at 0.625 mm)."""
    label = np.asarray(label)
    la = la_mask(label)
    return la & ~(derived_wall(la, spacing, radius_voxels=radius_voxels) | scar_mask(label))


def scar_burden(label: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Volumes (ml) of LA, wall and scar and the scar percentage of the wall for a label map.

    Scar voxels count as wall even where the erosion rule would call them cavity, so the
    percentage never exceeds 100.
    """
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    label = np.asarray(label)
    box = ndimage.find_objects((label > 0).astype(np.uint8))  # the erosion treats outside as background:
    if box:                                                    # peeling the LA's bounding box is exact and fast
        label = label[box[0]]
    la = la_mask(label)
    scar = scar_mask(label)
    wall = derived_wall(la, spacing) | scar
    n_wall, n_scar = int(wall.sum()), int(scar.sum())
    return {
        "la_ml": float(la.sum()) * voxel_ml,
        "wall_ml": n_wall * voxel_ml,
        "scar_ml": n_scar * voxel_ml,
        "scar_percent": 100.0 * n_scar / n_wall if n_wall else 0.0,
    }
