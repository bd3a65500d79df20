"""Seconds of the surface scar map of one scan: the map (mesh, projection) and writing its three files.

Median, minimum and maximum of ``repeats`` runs, each on the scan's masks as inference wrote them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

from bundle.data.io import read_image
from bundle.data.predictions import LA_FILE, read_prediction
from bundle.quantification.burden import quantify
from bundle.quantification.surface_report import surface_outputs


def time_surface(predictions: str | Path, scan: str, image: str | Path | None = None, repeats: int = 5) -> dict:
    """Seconds of the surface map and of writing its files for ``scan`` of a prediction folder (``image`` adds the
    intensity ratio, as at inference)."""
    reference = read_image(Path(predictions) / scan / LA_FILE)
    label = read_prediction(predictions, scan, reference, Path(predictions) / scan / LA_FILE)
    intensities = sitk.GetArrayFromImage(read_image(image)) if image else None
    scar_percent = quantify(label, reference)["scar_percent"]
    maps, writes = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(repeats):
            start = time.perf_counter()
            columns, write = surface_outputs(label, reference, scan, scar_percent, intensities)
            middle = time.perf_counter()
            write(Path(folder))
            maps.append(middle - start)
            writes.append(time.perf_counter() - middle)
    summary = {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)}
               for name, v in (("surface_map", maps), ("write_vtk_ply_png", writes))}
    return {"scan": scan, "size": list(reference.GetSize()), "repeats": repeats, **summary,
            "surface_scar_percent": columns["surface_scar_percent"], "surface_area_cm2": columns["surface_area_cm2"]}
