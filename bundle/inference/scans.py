"""Scans to segment: a folder of image files, a tree of DICOM series, or a dataset in one of the layouts (one split
of its plan).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import SimpleITK as sitk

from bundle.data.dicom import read_series, series_records
from bundle.data.io import image_suffix, read_image
from bundle.data.layouts import read_dataset, safe_name
from bundle.errors import DatasetError
from bundle.planning.split import split_records

SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
"""Image files a folder of scans may hold (a detached ``.nhdr``/``.mhd`` header counts, not its raw file)."""

DICOM_LAYOUT = "dicom"
"""``layout`` of a tree of DICOM series (a folder without image files is read as one too)."""


def scan_name(path: str | Path) -> str:
    """A scan id from an image file name: the name without its format suffix (``.nii.gz`` as one)."""
    name = Path(path).name
    return name[: len(name) - len(image_suffix(name))]


def scan_records(
    dataset_dir: str | Path, layout: str | None = None, plan: dict | None = None, split: str | None = None,
    csv: str | None = None, series_description: str | Sequence[str] | None = None,
) -> list[dict]:
    """Scans to segment, as records with ``scan`` and ``image``.

    With ``layout`` None, ``dataset_dir`` is a folder of scans (every NRRD, NIfTI or MetaImage file
    directly in it) or, when it holds none, a tree of DICOM series (one scan per series, see
    :mod:`bundle.data.dicom`; ``layout: dicom`` asks for that explicitly). ``series_description`` keeps only the
    series whose description contains one of its strings (e.g. ``["LGE", "PSIR"]``). With a dataset layout
    (``datalist``, ``miccai2018``, ``lascarqs2022``) it is a dataset; ``split`` (``train``/``validation``/``test``
    of ``plan``) keeps that split only.

    Raises:
        DatasetError: the folder is missing or holds no scans; a split is asked without a layout.
    """
    root = Path(dataset_dir)
    if layout == DICOM_LAYOUT:
        return series_records(root, series_description)
    if layout is not None:
        if split is not None:
            if plan is None:
                raise ValueError("a split needs the plan that defines it")
            return split_records(plan, split, root, layout, csv)
        return read_dataset(root, layout, csv)
    if split is not None:
        raise DatasetError(root, f"a split ({split!r}) needs a dataset layout; a folder of scans has no split")
    if not root.is_dir():
        raise DatasetError(root, "folder of scans not found")
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and image_suffix(p) in SCAN_SUFFIXES)
    if not files:
        try:
            return series_records(root, series_description)
        except DatasetError:
            raise DatasetError(root, f"no scans in the folder (looked for {', '.join(SCAN_SUFFIXES)} files and "
                                     "DICOM series)") from None
    records = [{"scan": scan_name(p), "image": str(p)} for p in files]
    for record in records:
        try:
            safe_name(record["scan"])
        except ValueError as err:
            raise DatasetError(record["image"], f"rename it: {err}") from None
    twice = sorted(n for n, k in Counter(r["scan"] for r in records).items() if k > 1)
    if twice:
        raise DatasetError(root, f"scan names appear in two formats, rename one: {twice[:5]}")
    return records


def read_scan(record: Mapping) -> sitk.Image:
    """The image of an inference record: a DICOM series (:func:`bundle.data.dicom.read_series`) or an image file.

    Raises:
        DatasetError: naming the file or series, when it cannot be read as one 3D scan.
    """
    if record.get("error"):
        raise DatasetError(record["image"], record["error"])
    if record.get("dicom") is not None:
        return read_series(record["dicom"])
    return read_image(record["image"])
