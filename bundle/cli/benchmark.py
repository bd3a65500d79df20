"""Timings of each stage, printed as JSON. Run a benchmark alone on the machine: a concurrent job skews it.

    jasgan-benchmark planning --n_patients 12 --profile miccai2018 [--nnunet_bin <nnunet-venv>/bin]
    jasgan-benchmark training [--preset cpu] [--patch "[192,192]" --batch_size 4] [--amp True]
    jasgan-benchmark inference [--preset cpu] [--model_file models/model.ts --localizer_file models/localizer.ts]
    jasgan-benchmark backends --preset cpu --weights models/model.pt --scan <scan> --label <its LA mask>
    jasgan-benchmark dicom [--size "[640,640]" --slices 60]
    jasgan-benchmark surface --predictions eval/predictions --scan P004_post --image <the scan>
    jasgan-benchmark synthesis [--scans 3]

``--preset`` is one of the planner's profiles (``paper``, the default, or ``cpu``;
:func:`bundle.benchmarks.presets.preset`); any size may be overridden.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable

import torch

from bundle.benchmarks import backends as backend_bench
from bundle.benchmarks import dicom as dicom_bench
from bundle.benchmarks import inference as inference_bench
from bundle.benchmarks import planning as planning_bench
from bundle.benchmarks import surface as surface_bench
from bundle.benchmarks import synthesis as synthesis_bench
from bundle.benchmarks import training as training_bench
from bundle.cli import run, setup_logging
from bundle.planning import rules


def _print(result: dict) -> None:
    print(json.dumps(result, indent=2))


def _options(function: Callable, overrides: dict) -> dict | None:
    """``overrides`` when ``function`` takes them all; None after printing its options for ``--help``; else a
    ValueError naming the unknown options and the known ones (not a TypeError from deep inside)."""
    known = [name for name in inspect.signature(function).parameters if name != "profile"]
    options = ", ".join(f"--{name}" for name in known)
    if overrides.pop("help", None) is not None:
        print(f"{inspect.getdoc(function)}\n\noptions: --preset, --log_level, {options}")
        return None
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join('--' + name for name in unknown)}; the options are --preset, "
                         f"--log_level, {options}")
    return overrides


def planning(out: str = "bench/planning", n_patients: int = 12, profile: str = "miccai2018", seed: int = 0,
             nnunet_bin: str | None = None, log_level: str = "WARNING") -> None:
    """Synthesize and plan a phantom cohort of ``profile``, optionally beside nnU-Net v2's planner."""
    setup_logging(log_level)
    _print(planning_bench.benchmark(out, n_patients, profile, seed, nnunet_bin))


def training(preset: str = rules.DEFAULT_PROFILE, iterations: int = 5, warmup: int = 1, device: str | None = None,
             log_level: str = "WARNING", **overrides) -> None:
    """Seconds per JAS-GAN training iteration (one T step + one Gls step) on random data."""
    setup_logging(log_level)
    options = _options(training_bench.time_iterations, {**overrides, "iterations": iterations, "warmup": warmup,
                                                        "device": device})
    if options is not None:
        _print(training_bench.time_iterations(preset, **options))


def inference(preset: str = rules.DEFAULT_PROFILE, repeats: int = 3, warmup: int = 1, device: str | None = None,
              log_level: str = "WARNING", **overrides) -> None:
    """Seconds, phases and peak memory to segment one whole scan through both stages (random weights unless both
    trained models are given: stage 1 then runs, but a fixed ROI of the plan's median LA plus margin is segmented)."""
    setup_logging(log_level)
    options = _options(inference_bench.time_scans, {**overrides, "repeats": repeats, "warmup": warmup, "device": device})
    if options is not None:
        _print(inference_bench.time_scans(preset, **options))


def backends(preset: str = rules.DEFAULT_PROFILE, roi: tuple[int, int] = (160, 160), batch_size: int = 8,
             repeats: int = 5, warmup: int = 2, backends: list[str] | None = None, weights: str | None = None,
             scan: str | None = None, label: str | None = None, threads: int | None = None,
             log_level: str = "WARNING") -> None:
    """CPU execution backends (default: all) for stage 2 on ``batch_size`` ROI slices of ``roi`` pixels."""
    setup_logging(log_level)
    if threads:
        torch.set_num_threads(int(threads))
    _print(backend_bench.time_backends(preset, roi, batch_size, repeats, warmup, backends, weights, scan, label))


def dicom(size: tuple[int, int] = (576, 576), slices: int = 44, repeats: int = 5, log_level: str = "WARNING") -> None:
    """Finding, checking and reading a ``size`` x ``slices`` DICOM series, against SimpleITK's reader alone."""
    setup_logging(log_level)
    _print(dicom_bench.time_dicom(size, slices, repeats))


def surface(predictions: str, scan: str, image: str | None = None, repeats: int = 5,
            log_level: str = "WARNING") -> None:
    """The surface scar map of ``scan`` of a prediction folder, and writing its files."""
    setup_logging(log_level)
    _print(surface_bench.time_surface(predictions, scan, image, repeats))


def synthesis(scans: int = 3, grids: list[str] | None = None, seed: int = 0, log_level: str = "WARNING") -> None:
    """Seconds to synthesize (and write) one whole phantom scan of each full-size grid, in one process."""
    setup_logging(log_level)
    _print(synthesis_bench.time_synthesis(grids or synthesis_bench.FULL_SIZE_GRIDS, scans, seed))


COMMANDS = {"planning": planning, "training": training, "inference": inference, "backends": backends,
            "dicom": dicom, "surface": surface, "synthesis": synthesis}
"""``jasgan-benchmark <command>``."""


def cli() -> None:
    """``jasgan-benchmark``."""
    run(COMMANDS)


if __name__ == "__main__":
    cli()
