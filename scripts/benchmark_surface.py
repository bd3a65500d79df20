"""Time the surface scar map of one scan: the map (mesh, projection) and the writing of its three files.

    python scripts/benchmark_surface.py --predictions eval/predictions --scan P004_post --image data/phantom/imagesTr/P004_post.nii.gz

Median, minimum and maximum of ``repeats`` runs, each on the scan's masks as inference wrote them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk
from _cli import run, setup_logging

from bundle.data.io import read_image
from bundle.data.predictions import LA_FILE, read_prediction
from bundle.quantification.burden import quantify
from bundle.quantification.surface_report import surface_outputs


def main(predictions: str, scan: str, image: str | None = None, repeats: int = 5, log_level: str = "WARNING") -> None:
    """Print the seconds of the surface map and of writing its files for ``scan`` of a prediction folder."""
    setup_logging(log_level)
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
    size = "x".join(str(n) for n in reference.GetSize())
    for name, values in (("surface map", maps), ("write vtk, ply, png", writes)):
        print(f"{scan} ({size}): {name}: median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
              f"max {max(values):.2f} s over {repeats}")
    print(f"surface scar {columns['surface_scar_percent']:.1f} %, area {columns['surface_area_cm2']:.1f} cm^2")


if __name__ == "__main__":
    run(main)
