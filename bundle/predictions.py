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
from bundle.case import Case
from bundle.errors import DatasetError
from bundle.io import orientation_code, turn_array, write_image
from bundle.labels import compose_label
from bundle.layouts import read_mask, safe_name
from bundle.wall import derived_wall, scar_burden

logger = logging.getLogger(__name__)

LA_FILE = "la.nii.gz"
SCAR_FILE = "scar.nii.gz"
PROBABILITY_FILES = ("la_prob.nii.gz", "scar_prob.nii.gz")
REPORT_FIELDS = ("scan", "status", "la_ml", "wall_ml", "scar_ml", "scar_percent", "surface_scar_percent", "qc",
                 "qc_score", "image", "error")
"""First columns of ``report.csv``; ``status`` is ``ok``, ``failed`` or (inference) ``no_la``, then ``error`` says
why; ``qc`` is ``ok`` or the reasons to look again (:mod:`bundle.qc`)."""

BATCH_ERRORS = (DatasetError, ValueError, RuntimeError, OSError, MemoryError)
"""Errors that fail one scan of a batch but not the batch."""


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
    ``<out_dir>/<scan>`` is built under a temporary name and renamed into place, replacing an older one, so it is
    never left half-written.
    """
    out_dir = Path(out_dir)
    safe_name(scan)
    out_dir.mkdir(parents=True, exist_ok=True)
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
        final = out_dir / scan
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def drop_stale(out_dir: str | Path, scan: str) -> None:
    """Remove an older prediction of a scan that failed now, so no stale masks stand beside its failed row."""
    try:
        safe_name(scan)
    except ValueError:
        return  # not a folder this bundle could have written
    folder = Path(out_dir) / scan
    if folder.is_dir():
        shutil.rmtree(folder)
        logger.warning("removed the older prediction %s of a scan that failed now", folder)


def read_prediction(
    pred_dir: str | Path, scan: str, reference: sitk.Image | Case, reference_path: str | Path
) -> np.ndarray:
    """The label map (0/1/2) of ``scan``'s predicted masks, checked to lie on ``reference``'s grid (an image or
    a :class:`~bundle.case.Case`).

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


AXIAL_ORIENTATION = "LPS"
"""A frame whose array axis 0 is axial, for peeling the wall in the axial plane (flips do not matter)."""


def _on_grid(array: np.ndarray, reference: sitk.Image | Case) -> sitk.Image:
    """``array`` as an image with ``reference``'s geometry."""
    if isinstance(reference, Case):
        return reference.to_image(np.asarray(array))
    image = sitk.GetImageFromArray(np.asarray(array))
    image.CopyInformation(reference)
    return image


def _axial(image: sitk.Image) -> sitk.Image:
    """``image`` with array axis 0 axial (turned only when it is stored otherwise)."""
    return image if orientation_code(image)[2] in "SI" else sitk.DICOMOrient(image, AXIAL_ORIENTATION)


def axial_array(array: np.ndarray, reference: sitk.Image | Case) -> np.ndarray:
    """An array on ``reference``'s grid re-expressed with axis 0 axial (for figures of axial slices)."""
    return sitk.GetArrayFromImage(_axial(_on_grid(np.asarray(array), reference)))


def axial_wall(la: np.ndarray, reference: sitk.Image | Case) -> np.ndarray:
    """:func:`bundle.wall.derived_wall` of an LA mask on ``reference``'s grid, peeled in the axial plane
    whatever order the scan's axes are stored in; returned on that grid."""
    image = _on_grid((np.asarray(la) > 0).astype(np.uint8), reference)
    turned = _axial(image)
    wall = derived_wall(sitk.GetArrayFromImage(turned), turned.GetSpacing())
    if turned is image:
        return wall
    return sitk.GetArrayFromImage(turn_array(wall.astype(np.uint8), turned, orientation_code(image))) > 0


def quantify(label: np.ndarray, reference: sitk.Image | Case) -> dict[str, float]:
    """Scar report values of a label map on ``reference``'s grid: ``la_ml``, ``wall_ml``, ``scar_ml``,
    ``scar_percent`` (:func:`bundle.wall.scar_burden`).

    The wall is peeled in the axial plane whatever order the scan's axes are stored in: the label is
    turned to an axial frame first, so a scan stored sagitally gets the same numbers as its axial copy.
    """
    image = _axial(_on_grid(np.asarray(label), reference))
    return scar_burden(sitk.GetArrayFromImage(image), image.GetSpacing())


def failed_row(item: Mapping, error: BaseException) -> dict:
    """The report row of an item (``scan``, ``image``) that failed with ``error``."""
    return {"scan": str(item.get("scan", "")), "image": str(item.get("image", "")), "status": "failed",
            "error": str(error) or type(error).__name__}


def run_batch(items: Iterable[Mapping], process: Callable[[Mapping], dict], what: str = "scan") -> list[dict]:
    """``process`` each item (a record with ``scan`` and ``image``); a failing item gives a ``failed`` row.

    ``process`` returns the row values of a successful item (``status`` defaults to ``ok``). Errors of
    :data:`BATCH_ERRORS` are logged with the scan and its file and the batch goes on.
    """
    rows = []
    items = list(items)
    for i, item in enumerate(items, 1):
        scan = str(item.get("scan", ""))
        try:
            row = {"scan": scan, "image": str(item.get("image", "")), "status": "ok", **process(item)}
            logger.info("%s %d/%d %s: done", what, i, len(items), scan)
        except BATCH_ERRORS as err:
            row = failed_row(item, err)
            logger.error("%s %d/%d %s failed and is skipped: %s", what, i, len(items), scan, row["error"])
        rows.append(row)
    return rows


def _csv_value(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def rows_to_csv(rows: Sequence[Mapping], fields: Sequence[str] | None = None) -> str:
    """CSV text of ``rows`` (``fields`` first, then any other keys in order of appearance); NaN -> empty."""
    columns = list(fields or [])
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buffer.getvalue()


def json_safe(value: object) -> object:
    """``value`` with NaN/inf floats as None and NumPy scalars as Python numbers (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(rows: Sequence[Mapping], out_dir: str | Path, meta: Mapping | None = None) -> tuple[Path, Path]:
    """Write ``report.csv`` and ``report.json`` (``{"meta": ..., "scans": rows}``) atomically into ``out_dir``."""
    out_dir = Path(out_dir)
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
