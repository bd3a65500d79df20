"""Benchmark: synthesize and plan a phantom cohort, optionally beside nnU-Net v2's planner.

    python scripts/benchmark_planning.py --n_patients 12 --profile miccai2018
    python scripts/benchmark_planning.py --n_patients 60 --nnunet_bin /path/to/nnunet-venv/bin

Run it alone on the machine: a concurrent job skews the timings.
"""

from __future__ import annotations

import json

import fire
from _cli import setup_logging

from bundle.benchmarks.planning import benchmark


def main(out: str = "bench/planning", n_patients: int = 12, profile: str = "miccai2018", seed: int = 0,
         nnunet_bin: str | None = None, log_level: str = "WARNING") -> None:
    setup_logging(log_level)
    print(json.dumps(benchmark(out, n_patients, profile, seed, nnunet_bin), indent=2))


if __name__ == "__main__":
    fire.Fire(main)
