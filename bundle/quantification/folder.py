"""The scar report of a prediction folder made by any tool (``jasgan-quantify``): burden, surface map, QC.

The folder holds ``<scan>/la.nii.gz`` and ``<scan>/scar.nii.gz`` (:mod:`bundle.data.predictions`); manual masks laid out
the same way work too. Each scan gets the volumes and scar % of the wall (:func:`bundle.quantification.burden.quantify`), its
surface scar map (:mod:`bundle.quantification.surface_report`; the IIR arrays need the scans' images) and the quality check
(:mod:`bundle.quantification.qc`: LA volume, image borders, components outside the largest, scar burden; no ``qc_score``, which
needs the network's probabilities).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.batch import run_batch
from bundle.data.io import geometry_differences, read_image
from bundle.data.predictions import LA_FILE, prediction_scans, read_prediction, write_report
from bundle.errors import DatasetError, ForeignPathError
from bundle.ownership import claim_folder, within_bundle_folder
from bundle.quantification.burden import quantify
from bundle.quantification.qc import QcRules, borders, outside_largest_ml
from bundle.quantification.surface_report import SURFACE_FILES, SURFACE_META, surface_outputs

logger = logging.getLogger(__name__)

QUANTIFIED_KIND = "scar report"
"""The kind of folder (:mod:`bundle.ownership`) ``jasgan-quantify`` writes its report and surface maps into."""


def _scan_image(images: Mapping[str, str], scan: str, reference: sitk.Image) -> np.ndarray | None:
    """The intensities of ``scan``'s image (None when ``images`` has none), checked to lie on the masks' grid.

    Raises:
        DatasetError: the image cannot be read or lies on another grid than the masks.
    """
    if scan not in images:
        return None
    image = read_image(images[scan])
    diffs = geometry_differences(reference, image)
    if diffs:
        raise DatasetError(images[scan], f"image and masks of {scan!r} lie on different grids: {'; '.join(diffs)}")
    return sitk.GetArrayFromImage(image)


def quantify_folder(pred_dir: str | Path, out_dir: str | Path | None = None, images: Mapping[str, str] | None = None,
                    save_surface: bool = True, qc_rules: QcRules | None = None,
                    inputs: Sequence[str | Path | None] = ()) -> list[dict]:
    """Scar report of every scan of a prediction folder, on the masks' own grid, written as ``report.csv|json`` into
    ``out_dir`` (default: ``<pred_dir>/quantified``, so the report inference wrote beside the masks stays), with each
    scan's surface files in ``<out_dir>/<scan>/`` when ``save_surface``.

    ``images`` maps scan names to their image files (for the surface map's IIR). A scan whose masks are unreadable,
    not binary, on different grids, with scar outside the LA, or whose image lies on another grid is a ``failed``
    row; the others are reported.

    ``out_dir`` is claimed first (:mod:`bundle.ownership`): the default inside ``pred_dir`` only when the bundle
    wrote ``pred_dir``, never inside another tool's folder or ``inputs`` (the images' folder), and never a folder
    holding files the bundle did not write.
    """
    pred_dir = Path(pred_dir)
    if out_dir is None:
        out_dir = pred_dir / "quantified"
        if pred_dir.is_dir() and not within_bundle_folder(pred_dir):
            raise ForeignPathError(out_dir, f"the default report folder lies inside {pred_dir}, which the bundle did "
                                            "not write: it never adds files there; give the report folder (--out)")
    prediction_scans(pred_dir)  # a missing or empty prediction folder is reported before anything is written
    out_dir = claim_folder(out_dir, QUANTIFIED_KIND, inputs=[*inputs, pred_dir])
    images = dict(images or {})
    rules = qc_rules or QcRules()

    def process(item: Mapping) -> dict:
        scan = item["scan"]
        for name in SURFACE_FILES:  # an earlier run's map must not stand beside a scan that fails or has no LA now
            (out_dir / scan / name).unlink(missing_ok=True)
        la_path = pred_dir / scan / LA_FILE
        reference = read_image(la_path)
        label = read_prediction(pred_dir, scan, reference, la_path)
        intensities = _scan_image(images, scan, reference)
        row = {**quantify(label, reference), "removed_ml": outside_largest_ml(label > 0, reference.GetSpacing())}
        if save_surface and (label > 0).any():
            columns, write = surface_outputs(label, reference, scan, row["scar_percent"], intensities)
            row.update(columns)
            (out_dir / scan).mkdir(parents=True, exist_ok=True)
            write(out_dir / scan)
        row["qc"] = rules.check({**row, "borders": borders(label > 0, reference, None, rules.border_min_mm2)})
        return row

    items = [{"scan": s, "image": str(pred_dir / s / LA_FILE)} for s in prediction_scans(pred_dir)]
    if images and not {i["scan"] for i in items} & set(images):
        logger.warning("no scan of %s has an image among the %d given (names differ?): the surface maps have no IIR",
                       pred_dir, len(images))
    rows = run_batch(items, process, what="quantification")
    write_report(rows, out_dir, {"quantified": str(pred_dir), "qc_rules": rules.describe(),
                                 "surface": SURFACE_META if save_surface else None})
    return rows
