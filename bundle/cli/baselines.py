"""Run the classical scar baselines (2SD, 3SD, Otsu, IIR, toolkit k-means) on a split of a planned dataset.

    jasgan-baselines --dataset data/phantom --layout datalist --plan plans/phantom.json \
        --out eval/baselines --split test --methods 2sd,otsu,kmeans
"""

from __future__ import annotations

from bundle.cli import run, setup_logging
from bundle.evaluation.baselines import DEFAULT_METHODS, run_baselines


def main(
    dataset: str = "data/phantom",
    plan: str = "plans/phantom.json",
    out: str = "eval/baselines",
    layout: str = "datalist",
    split: str = "test",
    methods: str | tuple[str, ...] = ",".join(DEFAULT_METHODS),
    la_from: str | None = None,
    csv: str | None = None,
    log_level: str = "INFO",
) -> None:
    """Write ``<out>/<method>/<scan>/{la,scar}.nii.gz`` and ``<out>/<method>/report.csv|json`` for each
    method (comma-separated: 2sd, 3sd, otsu, iir1.2, iir1.32, kmeans). The wall is the dataset's
    (given, or derived from its LA), or derived from the predicted LA of the folder ``la_from``."""
    setup_logging(log_level)
    rows = run_baselines(dataset, layout, plan, out, split=split, methods=methods, la_from=la_from, csv=csv)
    for name, method_rows in rows.items():
        failed = sum(r["status"] == "failed" for r in method_rows)
        print(f"{name}: {len(method_rows) - failed} scans written, {failed} failed -> {out}/{name}")


def cli() -> None:
    """``jasgan-baselines``."""
    run(main)


if __name__ == "__main__":
    cli()
