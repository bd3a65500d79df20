"""Seconds to synthesize one whole phantom scan of each full-size grid, in one process (the generator only, and the
write as uint16 NIfTI separately). Run it alone on the machine: a concurrent job skews the timings.

``jasgan-synthesize`` runs one process per core, so a dataset's wall time per scan is about this over the cores.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bundle.data.layouts import write_case
from bundle.data.phantom import ScanSpec, generate_scan
from bundle.data.phantom.families import WEIGHTS

FULL_SIZE_GRIDS = tuple(WEIGHTS["grid"])


def time_synthesis(grids: Sequence[str] = FULL_SIZE_GRIDS, scans: int = 3, seed: int = 0) -> dict:
    """Per grid: median, minimum and maximum seconds of ``generate_scan`` over ``scans`` whole LGE scans (patients
    1..scans, post-ablation: the one with the most scar to paint), the shape of the last and the seconds to write it
    (image and labels, compressed NIfTI).

    The process's first scan of a grid (patient ``scans + 1``, timed as ``first_s``) is left out of the statistics:
    it also pays for the first touch of its memory and the start of the thread pools, which ``jasgan-synthesize``
    pays once per worker, not per scan."""
    result: dict = {"scans_per_grid": scans, "grids": {}}
    for grid in grids:
        start = time.perf_counter()
        generate_scan(ScanSpec(scans + 1, "post", grid=grid), grid, seed)
        first_s = time.perf_counter() - start
        times, shape = [], None
        for patient in range(1, scans + 1):
            start = time.perf_counter()
            case = generate_scan(ScanSpec(patient, "post", grid=grid), grid, seed)
            times.append(time.perf_counter() - start)
            shape = case.image.shape
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            write_case(case, Path(folder), "datalist")
            write_s = time.perf_counter() - start
        result["grids"][grid] = {
            "shape_zyx": list(shape), "median_s": round(float(np.median(times)), 2),
            "min_s": round(min(times), 2), "max_s": round(max(times), 2), "first_s": round(first_s, 2),
            "write_s": round(write_s, 3),
        }
    return result
