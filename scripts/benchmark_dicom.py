"""Benchmark: seconds to find, check and read a whole LGE DICOM series (one file per slice), against a plain read.

    python scripts/benchmark_dicom.py                             # 576 x 576 x 44 uint16 slices (MICCAI 2018 size)
    python scripts/benchmark_dicom.py --size "[640,640]" --slices 60

Writes a synthetic series into a temporary folder, then times (median of ``repeats``) bundle.data.dicom's
find_series + read_series (header checks included) and SimpleITK's ImageSeriesReader alone. Run it alone
on the machine: a concurrent job skews the timings.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from _cli import run, setup_logging

from bundle.data.dicom import check_series, find_series, read_series, write_series


def _median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)), 3)


def main(size: tuple[int, int] = (576, 576), slices: int = 44, repeats: int = 5, log_level: str = "WARNING") -> None:
    """Time reading a ``size`` x ``slices`` series ``repeats`` times and print the medians as JSON."""
    setup_logging(log_level)
    array = np.random.default_rng(0).integers(0, 1200, (slices, size[1], size[0])).astype(np.uint16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.625, 0.625, 2.5))
    with tempfile.TemporaryDirectory() as folder:
        write_series(image, Path(folder) / "series")
        (series,), _ = find_series(folder)
        files = series.files
        result = {
            "size": list(size), "slices": slices, "repeats": repeats,
            "find_series_s": _median_seconds(lambda: find_series(folder), repeats),
            "check_headers_s": _median_seconds(lambda: check_series(series), repeats),
            "read_series_s (checks + read)": _median_seconds(lambda: read_series(series), repeats),
            "sitk_series_reader_s": _median_seconds(lambda: sitk.ReadImage(files), repeats),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main)
