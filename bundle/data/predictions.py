"""Prediction folders, scar reports and per-scan batches, shared by inference, baselines and evaluation.

Every method (the network, a classical threshold) writes the same layout, so one evaluation and one
comparison apply to all::

    <out>/<scan>/la.nii.gz         uint8 0/1, the LA (cavity + wall), on the input scan's grid
    <out>/<scan>/scar.nii.gz       uint8 0/1, scar inside the LA, same grid
    <out>/<scan>/la_prob.nii.gz    float32 probabilities (optional, network only)
    <out>/<scan>/scar_prob.nii.gz
    <out>/report.csv, report.json  one row per scan: LA, wall and scar volumes (ml), scar % of wall

A scan's folder appears complete or not at all (written beside it, then renamed). A scan that fails
gets a ``failed`` row with the reason in the report; the batch goes on with the others.

A prediction folder is the bundle's own (:mod:`bundle.ownership`): it is claimed before the first scan, so one
that holds files the bundle did not write is refused, not cleaned; a scan's folder is replaced only when it holds
nothing but the files the bundle writes there (:data:`SCAN_FOLDER_FILES`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.atomic import atomic_write_text
from bundle.data.case import Case
from bundle.errors import DatasetError, ForeignPathError
from bundle.ownership import claim_folder
from bundle.data.io import orientation_code, turn_array, write_image
from bundle.data.labels import compose_label
from bundle.data.layouts import read_mask, safe_name
from bundle.data.wall import derived_wall, scar_burden
from bundle.batch import json_safe
from bundle.batch import rows_to_csv

logger = logging.getLogger(__name__)

LA_FILE = "la.nii.gz"
SCAR_FILE = "scar.nii.gz"
PROBABILITY_FILES = ("la_prob.nii.gz", "scar_prob.nii.gz")
SURFACE_FILES = ("surface.vtk", "surface.ply", "surface.png")
"""The LA surface scar map of a scan (:mod:`bundle.quantification.surface_report` writes them)."""
SEG_FILE = "seg.dcm"
"""A scan's DICOM SEG (:mod:`bundle.inference.dicom_seg` writes it)."""
SCAN_FOLDER_FILES = frozenset((LA_FILE, SCAR_FILE, *PROBABILITY_FILES, *SURFACE_FILES, SEG_FILE))
"""Everything the bundle writes into ``<out>/<scan>/``: a scan folder holding anything else is not replaced."""
PREDICTION_KIND = "prediction folder"
"""The kind of folder (:mod:`bundle.ownership`) a prediction folder is claimed as."""
REPORT_FIELDS = ("scan", "status", "la_ml", "wall_ml", "scar_ml", "scar_percent", "surface_scar_percent", "qc",
                 "qc_score", "image", "error")
"""First columns of ``report.csv``; ``status`` is ``ok``, ``failed`` or (inference) ``no_la``, then ``error`` says
why; ``qc`` is ``ok`` or the reasons to look again (:mod:`bundle.quantification.qc`)."""


def write_prediction(
    out_dir: str | Path,
    scan: str,
    la: np.ndarray,
    scar: np.ndarray,
    reference: sitk.Image,
    probabilities: Sequence[np.ndarray] | None = None,
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write one scan's LA and scar masks (and optional [LA, scar] probabilities) with ``reference``'s grid.

    Scar outside the LA is dropped. ``extra`` writes more files into the folder (e.g. the surface map). The folder
    ``<out_dir>/<scan>`` is built under a temporary name and renamed into place, replacing an older one (only one
    the bundle wrote, :func:`check_scan_folder`), so it is never left half-written.

    Raises:
        ForeignPathError: ``out_dir`` or the scan's folder holds files the bundle did not write.
    """
    out_dir = claim_folder(out_dir, PREDICTION_KIND)
    safe_name(scan)
    final = out_dir / scan
    if final.exists():
        check_scan_folder(final)
    la = np.asarray(la) > 0
    scar = (np.asarray(scar) > 0) & la
    tmp = Path(tempfile.mkdtemp(prefix=f".{scan}.", dir=out_dir))
    try:
        write_image(la.astype(np.uint8), tmp / LA_FILE, reference)
        write_image(scar.astype(np.uint8), tmp / SCAR_FILE, reference)
        if probabilities is not None:
            for name, prob in zip(PROBABILITY_FILES, probabilities, strict=True):
                write_image(np.asarray(prob, dtype=np.float32), tmp / name, reference)
        if extra is not None:
            extra(tmp)
        os.chmod(tmp, 0o755)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def check_scan_folder(folder: str | Path) -> None:
    """Raise unless ``folder`` is a scan's folder as the bundle writes it: a folder of :data:`SCAN_FOLDER_FILES` only.

    Raises:
        ForeignPathError: naming the folder and the files the bundle did not write.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ForeignPathError(folder, "is not a folder the bundle wrote (a scan's prediction is a folder): not "
                                       "replaced; move it away")
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in SCAN_FOLDER_FILES or not p.is_file())
    if foreign:
        raise ForeignPathError(folder, f"holds files the bundle does not write into a scan's folder ({foreign[:5]}): "
                                       "not replaced; move them away")


def drop_stale(out_dir: str | Path, scan: str) -> None:
    """Remove an older prediction of a scan that failed now, so no stale masks stand beside its failed row; a folder
    with files the bundle did not write is left as it is (with a warning)."""
    try:
        safe_name(scan)
    except ValueError:
        return  # not a folder this bundle could have written
    folder = Path(out_dir) / scan
    if folder.is_dir():
        try:
            check_scan_folder(folder)
        except ForeignPathError as err:
            logger.warning("the older prediction of a scan that failed now is left in place: %s", err)
            return
        shutil.rmtree(folder)
        logger.warning("removed the older prediction %s of a scan that failed now", folder)


def read_prediction(
    pred_dir: str | Path, scan: str, reference: sitk.Image | Case, reference_path: str | Path
) -> np.ndarray:
    """The label map (0/1/2) of ``scan``'s predicted masks, checked to lie on ``reference``'s grid (an image or
    a :class:`~bundle.data.case.Case`).

    Raises:
        DatasetError: the scan's prediction is missing, not binary, on another grid, or has scar
            outside its LA.
    """
    folder = Path(pred_dir) / scan
    la_path, scar_path = folder / LA_FILE, folder / SCAR_FILE
    for path in (la_path, scar_path):
        if not path.is_file():
            raise DatasetError(path, f"prediction of scan {scan!r} not found")
    la = read_mask(la_path, reference, reference_path)
    scar = read_mask(scar_path, reference, reference_path)
    outside = int((scar & ~la).sum())
    if outside:
        raise DatasetError(scar_path, f"{outside} of {int(scar.sum())} scar voxels lie outside the predicted LA")
    return compose_label(la, scar)


def write_report(rows: Sequence[Mapping], out_dir: str | Path, meta: Mapping | None = None) -> tuple[Path, Path]:
    """Write ``report.csv`` and ``report.json`` (``{"meta": ..., "scans": rows}``) atomically into ``out_dir`` (a
    folder the bundle claims as a prediction folder)."""
    out_dir = claim_folder(out_dir, PREDICTION_KIND)
    csv_path = atomic_write_text(out_dir / "report.csv", rows_to_csv(rows, REPORT_FIELDS))
    document = {"meta": dict(meta or {}), "n_scans": len(rows),
                "n_failed": sum(r.get("status") == "failed" for r in rows), "scans": list(rows)}
    json_path = atomic_write_text(out_dir / "report.json", json.dumps(json_safe(document), indent=2) + "\n")
    return csv_path, json_path


def prediction_scans(pred_dir: str | Path) -> list[str]:
    """Scan folders of a prediction folder (those holding ``la.nii.gz``), in name order.

    Raises:
        DatasetError: the folder is missing or holds no scan folder.
    """
    root = Path(pred_dir)
    if not root.is_dir():
        raise DatasetError(root, "prediction folder not found")
    scans = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / LA_FILE).exists())
    if not scans:
        raise DatasetError(root, f"no scan folders with {LA_FILE} in it")
    return scans
