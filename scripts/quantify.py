"""Scar burden (LA, wall and scar volume, scar % of the wall) of every scan of a prediction folder.

    python scripts/quantify.py --predictions outputs --out outputs/quantified

The folder holds ``<scan>/la.nii.gz`` and ``<scan>/scar.nii.gz`` (the format every method of this bundle
writes; manual masks of another tool can be laid out the same way). The report (``report.csv``, ``report.json``)
goes to ``out`` (default: ``<predictions>/quantified``).
"""

from __future__ import annotations

from _cli import run, setup_logging

from bundle.predictions import quantify_folder


def main(predictions: str, out: str | None = None, log_level: str = "WARNING") -> None:
    """Write the scar report of the prediction folder ``predictions`` and print one line per scan."""
    setup_logging(log_level)
    rows = quantify_folder(predictions, out)
    for row in rows:
        if row["status"] == "ok":
            print(f"{row['scan']}: LA {row['la_ml']:.2f} ml, wall {row['wall_ml']:.2f} ml, scar {row['scar_ml']:.2f} ml "
                  f"= {row['scar_percent']:.1f} % of the wall")
        else:
            print(f"{row['scan']}: failed: {row['error']}")
    print(f"report: {out or predictions + '/quantified'}/report.csv, report.json")


if __name__ == "__main__":
    run(main)
