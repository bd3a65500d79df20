"""Benchmark: seconds, phases and peak memory to segment one whole scan through both stages.

    python scripts/benchmark_inference.py                       # paper-size networks, a whole 576 x 576 x 44 scan
    python scripts/benchmark_inference.py --preset cpu          # the default (cpu profile) networks, same scan
    python scripts/benchmark_inference.py --preset cpu --model_file models/model.ts --localizer_file models/localizer.ts
    python scripts/benchmark_inference.py --preset cpu --backend eager   # stage 2 without the default channels_last

Random weights unless both trained models are given: stage 1 then runs but a fixed ROI of the plan's median LA
size plus margin is segmented. Run it alone on the machine: a concurrent job skews the timings.
"""

from __future__ import annotations

import json

from _cli import run, setup_logging

from bundle.benchmarks.inference import PRESETS, time_scans


def main(preset: str = "paper", repeats: int = 3, warmup: int = 1, device: str | None = None,
         log_level: str = "WARNING", **overrides) -> None:
    """Time ``repeats`` whole-scan segmentations of a preset (``paper`` or ``cpu``), with any keyword overridden."""
    setup_logging(log_level)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    settings = {**PRESETS[preset], **overrides}
    print(json.dumps(time_scans(repeats=repeats, warmup=warmup, device=device, **settings), indent=2))


if __name__ == "__main__":
    run(main)
