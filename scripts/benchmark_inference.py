"""Benchmark: seconds and peak memory to segment one whole scan (random weights, synthetic volume).

    python scripts/benchmark_inference.py                     # paper size: Gl 32..512 on a 576 x 576 x 44 scan
    python scripts/benchmark_inference.py --preset cpu        # the laptop default: Gl 16..128 on 192 x 192 x 36

Run it alone on the machine: a concurrent job skews the timings.
"""

from __future__ import annotations

import json

import fire
from _cli import setup_logging

from bundle.inference_benchmark import time_scans

PRESETS = {
    "paper": {"shape_zyx": (44, 576, 576), "gl_widths": (32, 64, 128, 256, 512), "gs_width": 32, "lstm_channels": 32},
    "cpu": {"shape_zyx": (36, 192, 192), "gl_widths": (16, 32, 64, 128, 128), "gs_width": 16, "lstm_channels": 16},
}


def main(preset: str = "paper", repeats: int = 3, warmup: int = 1, device: str | None = None,
         log_level: str = "WARNING", **overrides) -> None:
    """Time ``repeats`` whole-scan segmentations of a preset (``paper`` or ``cpu``), with any keyword overridden."""
    setup_logging(log_level)
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    settings = {**PRESETS[preset], **overrides}
    print(json.dumps(time_scans(repeats=repeats, warmup=warmup, device=device, **settings), indent=2))


if __name__ == "__main__":
    fire.Fire(main)
