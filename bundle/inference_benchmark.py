"""Time whole-scan inference (:class:`bundle.inference.Segmenter`): seconds and peak memory per scan.

Used by ``scripts/benchmark_inference.py``. The network has random weights and the scan is a smooth
synthetic volume of the given size, so only the work is timed: preprocessing, slice-wise network
passes, resampling back, thresholding and the 3D post-processing.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
import torch

from bundle.inference import Segmenter
from bundle.networks import CascadeNet


def synthetic_scan(shape_zyx: Sequence[int], spacing: Sequence[float], seed: int = 0) -> sitk.Image:
    """A noisy volume with a bright ellipsoid in the middle, on an LPS grid of ``spacing`` (x, y, z) mm."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape_zyx), indexing="ij")
    array = 100.0 + 100.0 * ((zz / 0.5) ** 2 + (yy / 0.3) ** 2 + (xx / 0.3) ** 2 < 1) + rng.normal(0, 15, shape_zyx)
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetSpacing(tuple(float(s) for s in spacing))
    return image


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def time_scans(
    shape_zyx: Sequence[int] = (44, 576, 576),
    spacing: Sequence[float] = (0.625, 0.625, 2.5),
    plan_spacing: Sequence[float] | None = None,
    gl_widths: Sequence[int] = (32, 64, 128, 256, 512),
    gs_width: int = 32,
    lstm_channels: int = 32,
    batch_size: int = 8,
    closing_radius_mm: float = 1.25,
    repeats: int = 3,
    warmup: int = 1,
    device: str | None = None,
) -> dict:
    """Median seconds per scan of ``Segmenter.segment`` (after ``warmup``), the peak memory, and the settings."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    network = CascadeNet(1, gl_widths, gs_width, "adaptive", lstm_channels).to(dev).eval()
    target = list(plan_spacing or spacing[:2])
    plan = {
        "decisions": {"target_spacing": {"value": target},
                      "normalization": {"value": {"scheme": "zscore_per_volume", "epsilon": 1e-8, "clip": False}}},
        "fingerprint": {"summary": {"orientations": {"LPS": 1}}},
    }
    segmenter = Segmenter(network, plan, device=dev, closing_radius_mm=closing_radius_mm, batch_size=batch_size)
    image = synthetic_scan(shape_zyx, spacing)
    times = []
    for i in range(warmup + repeats):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        segmenter.segment(image)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    seconds = times[len(times) // 2]
    out = {
        "device": str(dev), "threads": torch.get_num_threads(), "shape_zyx": list(shape_zyx), "spacing": list(spacing),
        "plan_spacing": target, "gl_widths": list(gl_widths), "gs_width": gs_width, "lstm_channels": lstm_channels,
        "batch_size": batch_size, "repeats": repeats, "seconds_per_scan": round(seconds, 3),
        "seconds_per_slice": round(seconds / shape_zyx[0], 4), "peak_memory_mb": round(peak_memory_mb(), 1),
    }
    if dev.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out
