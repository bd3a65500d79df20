"""Scar burden, surface scar map and quality check of every scan of a prediction folder.

    jasgan-quantify --predictions outputs --out outputs/quantified
    jasgan-quantify --predictions eval/predictions --images data/phantom --layout datalist

The folder holds ``<scan>/la.nii.gz`` and ``<scan>/scar.nii.gz`` (the format every method of this bundle
writes; manual masks of another tool can be laid out the same way). The report (``report.csv``, ``report.json``:
LA, wall and scar volume, scar % of the wall and of the LA surface, ``qc``) and each scan's ``surface.vtk``,
``surface.ply`` and ``surface.png`` go to ``out`` (default: ``<predictions>/quantified``). ``images`` (a folder of
scans, or a dataset with ``layout``) adds the image intensity ratio (IIR) to the surface map.
"""

from __future__ import annotations

from bundle.cli import run, setup_logging
from bundle.inference.scans import scan_records
from bundle.quantification.folder import quantify_folder


def main(predictions: str, out: str | None = None, images: str | None = None, layout: str | None = None,
         surface: bool = True, log_level: str = "WARNING") -> None:
    """Write the scar report of the prediction folder ``predictions`` and print one line per scan."""
    setup_logging(log_level)
    image_files = {r["scan"]: r["image"] for r in scan_records(images, layout)} if images else None
    rows = quantify_folder(predictions, out, image_files, save_surface=surface, inputs=[images])
    for row in rows:
        if row["status"] == "ok":
            surface_text = (f", {row['surface_scar_percent']:.1f} % of the surface"
                            if "surface_scar_percent" in row else "")
            print(f"{row['scan']}: LA {row['la_ml']:.2f} ml, wall {row['wall_ml']:.2f} ml, scar {row['scar_ml']:.2f} ml "
                  f"= {row['scar_percent']:.1f} % of the wall{surface_text}; qc: {row['qc']}")
        else:
            print(f"{row['scan']}: failed: {row['error']}")
    print(f"report: {out or predictions + '/quantified'}/report.csv, report.json")


def cli() -> None:
    """``jasgan-quantify``."""
    run(main)


if __name__ == "__main__":
    cli()
