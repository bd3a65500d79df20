"""Seconds to find, check and read a whole LGE DICOM series (one file per slice), against a plain read.

A synthetic series is written into a temporary folder, then :mod:`bundle.data.dicom`'s ``find_series`` and
``read_series`` (header checks included) and SimpleITK's ImageSeriesReader alone are timed (median of ``repeats``).
Run it alone on the machine: a concurrent job skews the timings.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.data.dicom import check_series, find_series, read_series, write_series


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)), 3)


def time_dicom(size: Sequence[int] = (576, 576), slices: int = 44, repeats: int = 5) -> dict:
    """Median seconds of each step for a ``size`` x ``slices`` uint16 series (MICCAI 2018 size by default)."""
    array = np.random.default_rng(0).integers(0, 1200, (slices, size[1], size[0])).astype(np.uint16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.625, 0.625, 2.5))
    with tempfile.TemporaryDirectory() as folder:
        write_series(image, Path(folder) / "series")
        (series,), _ = find_series(folder)
        files = series.files
        return {
            "size": list(size), "slices": slices, "repeats": repeats,
            "find_series_s": _median_seconds(lambda: find_series(folder), repeats),
            "check_headers_s": _median_seconds(lambda: check_series(series), repeats),
            "read_series_s (checks + read)": _median_seconds(lambda: read_series(series), repeats),
            "sitk_series_reader_s": _median_seconds(lambda: sitk.ReadImage(files), repeats),
        }
