"""Compare methods' prediction folders on the same test split, in the layout of JAS-GAN's Tables IV and V.

    jasgan-compare --methods '{"JAS-GAN": "eval/predictions", "2SD": "eval/baselines/2sd"}' \
        --la_methods JAS-GAN --dataset data/phantom --plan plans/phantom.json --out eval/comparison

Each folder is evaluated against the dataset's labels (``<out>/<method>/metrics.csv``, ``summary.json``); the
tables (mean ± SD per metric and method, * p < 0.05 in a paired t-test against the best method) are printed and
saved as ``<out>/comparison.md|json|csv``.
"""

from __future__ import annotations

import json

from bundle.cli import run, setup_logging
from bundle.evaluation.comparison import PAPER_METRICS, compare_folders, format_table
from bundle.planning.planner import load_plan
from bundle.planning.split import split_records


def _names(value: str | tuple | list | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else [str(v) for v in value]


def main(
    methods: str | dict,
    dataset: str = "data/phantom",
    plan: str = "plans/phantom.json",
    out: str = "eval/comparison",
    layout: str = "datalist",
    split: str = "test",
    la_methods: str | tuple | None = None,
    scar_methods: str | tuple | None = None,
    metrics: str | tuple = ",".join(PAPER_METRICS),
    csv: str | None = None,
    log_level: str = "WARNING",
) -> None:
    """``methods``: a JSON object (or dict) ``{name: prediction folder}``, in table order. ``la_methods``: the
    methods that segment the LA themselves (comma-separated; default all), for the LA table; ``scar_methods``:
    those that segment scar, for the scar table (default all)."""
    setup_logging(log_level)
    if isinstance(methods, str):
        try:
            methods = json.loads(methods)
        except json.JSONDecodeError as err:
            raise ValueError(f"--methods must be a JSON object {{name: folder}}: {err}") from None
    if not isinstance(methods, dict):
        raise ValueError(f"--methods must be a JSON object {{name: folder}}, got {type(methods).__name__}")
    records = split_records(load_plan(plan), split, dataset, layout, csv)
    tables = compare_folders(methods, records, out, _names(la_methods), _names(metrics), _names(scar_methods),
                             inputs=[dataset])
    print("\n\n".join(format_table(t) for t in tables.values()))
    print(f"\nsaved {out}/comparison.md, comparison.json, comparison.csv")


def cli() -> None:
    """``jasgan-compare``."""
    run(main)


if __name__ == "__main__":
    cli()
