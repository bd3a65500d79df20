"""Scar burden of a label map on its scan's grid: LA, wall and scar volumes and scar % of the wall.

The wall is peeled in the axial plane (:func:`bundle.data.wall.derived_wall`) whatever order the scan stores its
axes in, so a scan stored sagitally gets the same numbers as its axial copy.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from bundle.data.case import Case
from bundle.data.io import axial_image, on_grid, orientation_code, turn_array
from bundle.data.wall import derived_wall, scar_burden


def axial_wall(la: np.ndarray, reference: sitk.Image | Case) -> np.ndarray:
    """:func:`bundle.data.wall.derived_wall` of an LA mask on ``reference``'s grid, peeled in the axial plane
    whatever order the scan's axes are stored in; returned on that grid."""
    image = on_grid((np.asarray(la) > 0).astype(np.uint8), reference)
    turned = axial_image(image)
    wall = derived_wall(sitk.GetArrayFromImage(turned), turned.GetSpacing())
    if turned is image:
        return wall
    return sitk.GetArrayFromImage(turn_array(wall.astype(np.uint8), turned, orientation_code(image))) > 0


def quantify(label: np.ndarray, reference: sitk.Image | Case) -> dict[str, float]:
    """Scar report values of a label map on ``reference``'s grid: ``la_ml``, ``wall_ml``, ``scar_ml``,
    ``scar_percent`` (:func:`bundle.data.wall.scar_burden`).

    The wall is peeled in the axial plane whatever order the scan's axes are stored in: the label is
    turned to an axial frame first, so a scan stored sagitally gets the same numbers as its axial copy.
    """
    image = axial_image(on_grid(np.asarray(label), reference))
    return scar_burden(sitk.GetArrayFromImage(image), image.GetSpacing())
