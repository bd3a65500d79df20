"""Time whole-scan inference through both stages: seconds and peak memory per scan, and where the time goes.

``jasgan-benchmark inference``. One whole phantom scan (576 x 576 x 88 at 0.625 mm isotropic by default, the 2018
challenge's grid) is written as NIfTI; each repeat reads it, runs :class:`bundle.inference.segmenter.Segmenter` (stage 1 on the coarse
copy, stage 2 on the ROI, resampling, post-processing) and writes the masks and the scar report values, as a user's
run does. With random weights a localiser finds nothing meaningful, so stage 1 runs its network (its cost counts)
but hands stage 2 a fixed ROI: the plan's median LA extent plus the ROI margin on every side, centred on the
phantom's LA. Given trained ``model_file`` and ``localizer_file``, the real stage 1 picks the ROI instead.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from bundle.benchmarks.presets import WHOLE_SCAN_ZYX, preset
from bundle.data.io import read_image, write_image
from bundle.data.predictions import write_prediction
from bundle.inference.backends import CPU_BACKEND, runner
from bundle.inference.localizer import NO_LA, Localizer, Location
from bundle.inference.rotations import DEFAULT_ROTATIONS_DEG
from bundle.inference.segmenter import Segmenter
from bundle.inference.two_stage import MAX_ROI_GROWTHS
from bundle.networks import CascadeNet, LocalizerNet
from bundle.networks.weights import load_model
from bundle.planning import rules
from bundle.planning.planner import load_plan, plan_decisions
from bundle.preprocessing.roi import roi_from_box
from bundle.quantification.burden import quantify
from bundle.quantification.qc import OK


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _write_phantom(path: str, shape_zyx: Sequence[int], spacing: Sequence[float]) -> list[float]:
    """Generate one whole phantom scan of that size (in a child process, so its memory is not counted), write
    it to ``path`` and return its LA centroid (z, y, x) in voxels."""
    from bundle.data.phantom import ScanSpec, generate_scan, get_profile

    profile = dataclasses.replace(get_profile("miccai2018"), name="benchmark", spacing=tuple(spacing),
                                  in_plane_sizes=(int(shape_zyx[1]),), slices=(int(shape_zyx[0]),) * 2)
    case = generate_scan(ScanSpec(1, "post"), profile, seed=0)
    write_image(case.image, path, case, dtype=np.uint16)
    return [float(v) for v in np.argwhere(case.label > 0).mean(axis=0)]


class FixedRoiLocalizer(Localizer):
    """Stage 1 that runs its network (so its cost is timed) but returns a fixed ROI of typical LA size."""

    def __init__(self, network: torch.nn.Module, plan: Mapping, centre_zyx: Sequence[float],
                 extent_mm: Sequence[float], device: str | torch.device = "cpu") -> None:
        super().__init__(network, plan, device)
        self.centre_zyx = [float(c) for c in centre_zyx]
        self.extent_mm = [float(e) for e in extent_mm]  # x, y, z

    def locate(self, volume, spacing_xyz) -> Location:
        self.probabilities(volume, spacing_xyz)
        half = [0.5 * e / s for e, s in zip(self.extent_mm[::-1], tuple(spacing_xyz)[::-1])]  # z, y, x voxels
        lo = [c - h for c, h in zip(self.centre_zyx, half)]
        hi = [c + h for c, h in zip(self.centre_zyx, half)]
        roi = roi_from_box(lo, hi, volume.shape[-3:], spacing_xyz, self.margin_mm, self.multiple)
        return Location(OK, roi, "fixed benchmark ROI")


class MissedLocalizer(Localizer):
    """Stage 1 that runs its network (so its cost is timed) but finds no LA, as on a scan it misses: stage 2 then
    searches the whole field of view (:meth:`bundle.inference.two_stage.TwoStageInferer.search_scan`)."""

    def locate(self, volume, spacing_xyz) -> Location:
        peak = float(self.probabilities(volume, spacing_xyz).max())
        return Location(NO_LA, None, "benchmark: stage 1's answer withheld", peak)


def time_scans(
    profile: str = rules.DEFAULT_PROFILE,
    shape_zyx: Sequence[int] = WHOLE_SCAN_ZYX,
    spacing: Sequence[float] = (0.625, 0.625, 0.625),
    gl_widths: Sequence[int] | None = None,
    gs_width: int | None = None,
    lstm_channels: int | None = None,
    plan_file: str | Path = "plans/phantom.json",
    model_file: str | None = None,
    localizer_file: str | None = None,
    backend: str = CPU_BACKEND,
    batch_size: int = 8,
    closing_radius_mm: float = 1.25,
    repeats: int = 3,
    warmup: int = 1,
    device: str | None = None,
    stage1_missed: bool = False,
    rotations_deg: Sequence[float] | None = DEFAULT_ROTATIONS_DEG,
) -> dict:
    """Median seconds per whole scan (read, both stages, write; after ``warmup``), its phases, the ROI, the peak
    memory and the settings. The plan's decisions are re-derived for ``profile`` from ``plan_file``'s fingerprint;
    the network's widths are the profile's (:func:`~bundle.benchmarks.presets.preset`) unless given.

    ``stage1_missed``: stage 1 finds no LA (:class:`MissedLocalizer`), so the time is that of a scan it misses: stage
    2's search of the whole field of view and its pass on what it found (``stage2`` holds both; ``stage1`` in the
    result says whether the search found an LA, ``searched``, or not, ``none``). ``rotations_deg``: stage 2's
    test-time rotations (configs/inference.yaml's ``tta_rotations_deg``; None or [0]: one pass)."""
    sizes = preset(profile, gl_widths=gl_widths, gs_width=gs_width, lstm_channels=lstm_channels)
    gl_widths, gs_width, lstm_channels = sizes["gl_widths"], sizes["gs_width"], sizes["lstm_channels"]
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    plan = dict(load_plan(plan_file))
    plan["decisions"] = plan_decisions(plan["fingerprint"], profile)  # stage 2's grid: the profile's plan's
    decisions = plan["decisions"]
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scan = Path(tmp) / "scan.nii.gz"
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            centre = pool.submit(_write_phantom, str(scan), shape_zyx, spacing).result()
        loc = decisions["localizer"]["value"]
        trained = bool(model_file and localizer_file)
        if trained:
            network = load_model(model_file, CascadeNet(1, gl_widths, gs_width, "adaptive", lstm_channels), dev)
            stage1 = load_model(localizer_file, LocalizerNet(loc["widths"], loc["strides"]), dev)
        else:
            torch.manual_seed(0)
            network = CascadeNet(1, gl_widths, gs_width, "adaptive", lstm_channels).to(dev).eval()
            stage1 = LocalizerNet(loc["widths"], loc["strides"]).to(dev).eval()
        if stage1_missed:
            locator = MissedLocalizer(stage1, plan, dev)
        elif trained:
            locator = Localizer(stage1, plan, dev)
        else:
            extent = [plan["fingerprint"]["summary"]["la_extent_mm"][a]["p50"] for a in ("x", "y", "z")]
            locator = FixedRoiLocalizer(stage1, plan, centre, extent, dev)
        segmenter = Segmenter(runner(network, backend, dev), plan, locator, device=dev,
                              closing_radius_mm=closing_radius_mm, batch_size=batch_size,
                              roi_growths=MAX_ROI_GROWTHS if trained else 0,  # random: a fixed ROI, never searched
                              scan_search=trained or stage1_missed, rotations_deg=rotations_deg)
        times, phases, result = [], [], None
        for i in range(warmup + repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            image = read_image(scan)
            read = time.perf_counter() - start
            result = segmenter.segment(image)
            mid = time.perf_counter()
            write_prediction(Path(tmp) / "out", "scan", result.label > 0, result.label == 2, image)
            quantify(result.label, image)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            end = time.perf_counter()
            if i >= warmup:
                times.append(end - start)
                phases.append({"read": read, **segmenter.timings, "write_and_report": end - mid})
    order = np.argsort(times)
    median = int(order[len(order) // 2])
    seconds = times[median]
    out = {
        "device": str(dev), "threads": torch.get_num_threads(), "backend": backend if dev.type == "cpu" else "eager",
        "shape_zyx": list(shape_zyx),
        "spacing": list(spacing), "profile": profile, "gl_widths": list(gl_widths), "gs_width": gs_width,
        "lstm_channels": lstm_channels, "localizer_widths": loc["widths"], "batch_size": batch_size,
        "trained": trained, "stage1_missed": bool(stage1_missed), "repeats": repeats,
        "rotations_deg": list(segmenter.stages.rotations_deg),
        "stage1": result.stage1,
        "seconds_per_scan": round(seconds, 3), "seconds_min": round(min(times), 3),
        "phases": {k: round(v, 3) for k, v in phases[median].items()},
        "roi": result.roi, "roi_share": None, "peak_memory_mb": round(peak_memory_mb(), 1),
    }
    if result.roi is not None:
        size = [b - a for a, b in zip(result.roi["start"], result.roi["stop"])]
        out["roi_voxels_xyz"] = size
        out["roi_share"] = round(float(np.prod(size)) / float(np.prod(shape_zyx)), 4)
    if dev.type == "cuda":
        out["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out
