"""Benchmark: seconds per JAS-GAN training iteration (one T step + one Gls step) on random data.

    python scripts/benchmark_training.py                      # paper size: 256 x 256, batch 8, widths 32..512
    python scripts/benchmark_training.py --preset cpu         # the cpu planner profile: 128 x 128, widths 16..128
    python scripts/benchmark_training.py --patch "[192,192]" --batch_size 4 --gs_width 16
    python scripts/benchmark_training.py --amp True                    # mixed precision (bfloat16; --amp_dtype float16)

Run it alone on the machine: a concurrent job skews the timings.
"""

from __future__ import annotations

import json

import fire
from _cli import setup_logging

from bundle.benchmarks.training import time_iterations

PRESETS = {
    "paper": {"patch": (256, 256), "batch_size": 8, "gl_widths": (32, 64, 128, 256, 512), "gs_width": 32,
              "lstm_channels": 32},
    "cpu": {"patch": (128, 128), "batch_size": 4, "gl_widths": (16, 32, 64, 128, 128), "gs_width": 16,
            "lstm_channels": 16},
}


def main(preset: str = "paper", iterations: int = 5, warmup: int = 1, device: str | None = None,
         log_level: str = "WARNING", **overrides) -> None:
    """Time ``iterations`` iterations of a preset (``paper`` or ``cpu``), with any keyword overridden."""
    setup_logging(log_level)
    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    settings = {**PRESETS[preset], **overrides}
    print(json.dumps(time_iterations(iterations=iterations, warmup=warmup, device=device, **settings), indent=2))


if __name__ == "__main__":
    fire.Fire(main)
