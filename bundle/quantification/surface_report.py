"""The surface scar map of one segmented scan as the report and the scan's folder hold it (inference, quantify).

Per scan: ``surface.vtk`` (VTK PolyData, 3D Slicer / ParaView), ``surface.ply`` (vertex colours) and ``surface.png``
(anterior, posterior, left and right views), and the report columns ``surface_scar_percent`` (scar % of the LA
surface area) and ``surface_area_cm2``. See :mod:`bundle.quantification.surface` for the mesh and the projection.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.data.predictions import SURFACE_FILES
from bundle.quantification.burden import axial_wall
from bundle.quantification.surface import (
    COORDINATE_SYSTEM,
    SCAR_MAJORITY,
    SEGMENT_MM,
    STEP_MM,
    TAUBIN_ITERATIONS,
    render_views,
    surface_map,
    write_ply,
    write_vtk,
)

SURFACE_META = {
    "files": list(SURFACE_FILES), "coordinate_system": COORDINATE_SYSTEM, "taubin_iterations": TAUBIN_ITERATIONS,
    "projection": f"majority of the wall samples from {SEGMENT_MM[0]:g} to {SEGMENT_MM[1]:g} mm along the inward "
                  f"normal, every {STEP_MM:g} mm (scar when >= {SCAR_MAJORITY:g})",
    "iir": "voxel intensity / mean LA blood-pool intensity, max and mean over the same wall samples",
}
"""A report's ``meta`` entry saying how the surface map was made."""


def surface_outputs(label: np.ndarray, reference: sitk.Image, scan: str, scar_percent: float,
                    image: np.ndarray | None = None) -> tuple[dict, Callable[[Path], None]]:
    """The surface map of a (z, y, x) label map on ``reference``'s grid: its report columns, and a function writing
    its files into a folder (so a caller can put them into a scan folder it writes atomically).

    ``image`` (the LGE intensities on that grid) gives the IIR arrays; without it they are NaN.
    """
    wall = axial_wall(np.asarray(label) > 0, reference)
    surface = surface_map(label, reference, wall, image)
    columns = {"surface_scar_percent": surface.scar_percent, "surface_area_cm2": surface.area_mm2 / 100.0}
    title = (f"{scan}: scar {surface.scar_percent:.1f} % of the LA surface "
             f"({scar_percent:.1f} % of the wall volume)")

    def write(folder: Path) -> None:
        folder = Path(folder)
        write_vtk(surface, folder / SURFACE_FILES[0], title=f"LA surface of {scan}")
        write_ply(surface, folder / SURFACE_FILES[1])
        render_views(surface, folder / SURFACE_FILES[2], title)

    return columns, write
