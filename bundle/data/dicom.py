"""DICOM series as scans: find the series of a folder tree, check each is one 3D volume, read it with its geometry.

Scanners write an LGE scan as a series of 2D slice files; PACS exports put series in folders (one or several
per folder, any depth, no DICOMDIR needed). SimpleITK's GDCM series reader groups the files by
SeriesInstanceUID and sorts them along the slice normal; before reading, each series is checked from its
headers only, so conversion errors that silently give a wrong volume are refused with the folder and series
named: slices of different size or pixel spacing under one series, duplicated or missing slices, non-uniform
slice spacing, differing orientations, a single 2D slice, multi-frame files.
"""

from __future__ import annotations

import locale
import logging
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.errors import DatasetError, ForeignPathError

logger = logging.getLogger(__name__)

TAGS = {
    "series_uid": "0020|000e", "patient_id": "0010|0020", "series_number": "0020|0011",
    "description": "0008|103e", "position": "0020|0032", "orientation": "0020|0037",
    "frames": "0028|0008", "rows": "0028|0010", "columns": "0028|0011", "pixel_spacing": "0028|0030",
    "modality": "0008|0060",
}
"""DICOM tags read from each slice's header (group|element, as SimpleITK names them)."""

ORIENTATION_TOL = 1e-4
"""Largest difference between two slices' direction cosines for one orientation."""

SPACING_TOL = 0.01
"""Largest relative deviation of a slice gap from the series' median gap (uniform spacing)."""

DICOM_MAGIC_OFFSET = 128
"""A DICOM Part 10 file has ``DICM`` after a 128-byte preamble."""


@dataclass
class DicomSeries:
    """One series found in a folder tree: its files (GDCM's order), folder, identifiers and description."""

    uid: str
    folder: Path
    files: list[str]
    patient_id: str = ""
    series_number: str = ""
    description: str = ""
    name: str = ""

    @property
    def where(self) -> str:
        """How errors name the series: folder, series number and description, UID."""
        label = " ".join(x for x in (f"#{self.series_number}" if self.series_number else "", self.description) if x)
        return f"{self.folder} (series {label or '?'}, UID {self.uid})"


def is_dicom_file(path: Path) -> bool:
    """True when ``path`` starts like a DICOM Part 10 file (``DICM`` after the preamble)."""
    try:
        with open(path, "rb") as f:
            f.seek(DICOM_MAGIC_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _header(path: str) -> dict:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.LoadPrivateTagsOff()
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else "" for key, tag in TAGS.items()}


def _numbers(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split("\\") if v.strip()], dtype=float)


def safe_series_name(patient_id: str, series_number: str, uid: str) -> str:
    """A folder name for a series: ``<PatientID>_S<SeriesNumber>`` (or the UID's last part), safe characters only."""
    parts = [patient_id or "patient", f"S{series_number}" if series_number else uid.split(".")[-1][-8:]]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts)).strip("-.") or "series"


def find_series(root: str | Path, description: str | Sequence[str] | None = None) -> tuple[list[DicomSeries], list[str]]:
    """Every DICOM series under ``root`` (any depth), optionally only those whose SeriesDescription contains one of
    ``description`` (case-insensitive, e.g. ``["LGE", "PSIR"]``); and the DICOM-looking files GDCM could not read.

    A series whose files sit in several folders is one series. Names are :func:`safe_series_name`, made unique.

    Raises:
        DatasetError: ``root`` is missing, or holds no DICOM series (or none matching ``description``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, "folder not found")
    by_uid: dict[str, list[str]] = defaultdict(list)
    folders: dict[str, Path] = {}
    unreadable: list[str] = []
    for folder, _, names in sorted(os.walk(root)):
        if not names:
            continue
        listed: set[str] = set()
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder):
            files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
            by_uid[uid] += files
            folders.setdefault(uid, Path(folder))
            listed.update(os.path.abspath(f) for f in files)
        unreadable += [str(Path(folder) / n) for n in sorted(names) if os.path.abspath(Path(folder) / n) not in listed
                       and is_dicom_file(Path(folder) / n)]
    wanted = [description] if isinstance(description, str) else list(description or [])
    series = []
    for uid, files in sorted(by_uid.items()):
        first = _header(files[0])
        found = DicomSeries(uid, folders[uid], files, first["patient_id"], first["series_number"], first["description"])
        if wanted and not any(w.lower() in found.description.lower() for w in wanted):
            logger.info("skipping %s: description does not contain %s", found.where, wanted)
            continue
        series.append(found)
    if not series:
        what = f"with a description containing {wanted}" if wanted else ""
        raise DatasetError(root, f"no DICOM series {what} found".replace("  ", " ").strip())
    names = Counter(safe_series_name(s.patient_id, s.series_number, s.uid) for s in series)
    for s in series:
        s.name = safe_series_name(s.patient_id, s.series_number, s.uid)
        if names[s.name] > 1:  # the same patient and series number twice (e.g. two studies): add the UID's end
            s.name = f"{s.name}_{s.uid.split('.')[-1][-8:]}"
    return series, unreadable


def check_series(series: DicomSeries) -> list[dict]:
    """The slice headers of ``series``, checked to be one 3D volume of uniformly spaced, parallel slices.

    Raises:
        DatasetError: naming the series' folder and series, for each way a series is not one 3D volume.
    """
    try:
        headers = [_header(f) for f in series.files]
    except RuntimeError as err:
        raise DatasetError(series.where, f"a slice file cannot be read: {str(err).strip().splitlines()[-1]}") from None
    multi = [Path(f).name for f, h in zip(series.files, headers) if h["frames"] and int(float(h["frames"])) > 1]
    if multi:
        raise DatasetError(series.where, f"multi-frame files ({multi[:3]}, {headers[0]['frames']} frames): "
                                         "give a series of single-slice files (convert enhanced DICOM first)")
    if len(headers) < 2:
        raise DatasetError(series.where, "a single 2D slice, not a 3D volume")
    shapes = Counter((h["rows"], h["columns"], h["pixel_spacing"]) for h in headers)
    if len(shapes) > 1:
        raise DatasetError(series.where, "slices of more than one acquisition under one series (rows, columns, "
                                         f"pixel spacing: {sorted(shapes)[:3]})")
    orientations = np.array([_numbers(h["orientation"]) for h in headers])
    if orientations.shape[1:] != (6,):
        raise DatasetError(series.where, "slices without a valid ImageOrientationPatient")
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_TOL:
        raise DatasetError(series.where, "slices of differing orientations (ImageOrientationPatient) in one series")
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    positions = np.array([_numbers(h["position"]) for h in headers])
    along = np.sort(positions @ normal)
    gaps = np.diff(along)
    if (gaps < 1e-3).any():
        twice = int((gaps < 1e-3).sum())
        raise DatasetError(series.where, f"duplicated slices: {twice} slice position(s) appear twice")
    median = float(np.median(gaps))
    off = np.abs(gaps - median) > SPACING_TOL * median
    if off.any():
        missing = np.round(gaps[off] / median) - 1
        if (missing >= 1).all() and np.allclose(gaps[off], (missing + 1) * median, rtol=SPACING_TOL):
            where = ", ".join(f"{along[i]:.2f}-{along[i + 1]:.2f} mm" for i in np.flatnonzero(off)[:3])
            raise DatasetError(series.where, f"missing slices: {int(missing.sum())} slice(s) absent between {where} "
                                             f"along the normal (spacing {median:.3f} mm)")
        raise DatasetError(series.where, f"non-uniform slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm")
    return headers


def read_series(series: DicomSeries) -> sitk.Image:
    """The checked series as one 3D image with its world geometry (GDCM's slice order along the normal).

    Raises:
        DatasetError: the series is not one 3D volume (:func:`check_series`) or cannot be read.
    """
    check_series(series)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series.files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        raise DatasetError(series.where, f"cannot be read: {str(err).strip().splitlines()[-1]}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(series.where, f"must be a scalar image, found {image.GetNumberOfComponentsPerPixel()} "
                                         "components per voxel")
    return image


def series_records(root: str | Path, description: str | Sequence[str] | None = None) -> list[dict]:
    """Inference records of the DICOM series under ``root``: ``scan`` (the series' safe name), ``image`` (its
    folder), ``series`` (description), ``series_uid`` and the files; DICOM-looking files no series holds give a
    record that fails with the reason, so the batch reports them and goes on."""
    series, unreadable = find_series(root, description)
    records = [{"scan": s.name, "image": str(s.folder), "series": s.description, "series_uid": s.uid,
                "dicom": s} for s in series]
    if unreadable:
        records.append({"scan": "unreadable-dicom", "image": str(Path(unreadable[0]).parent), "series": "",
                        "series_uid": "", "error": f"{len(unreadable)} DICOM file(s) cannot be parsed: "
                                                    f"{[Path(f).name for f in unreadable[:3]]}"})
    return records


# ----------------------------------------------------------------------------------------- writing


def write_series(
    image: sitk.Image, folder: str | Path, uid: str = "1.2.826.0.1.3680043.2.1125.1", patient: str = "PAT1",
    number: int = 5, description: str = "3D LGE", reverse: bool = False, positions: Sequence | None = None,
    orientations: Sequence | None = None, prefix: str = "IM",
) -> list[Path]:
    """Write ``image`` as a DICOM series of 2D MR slice files into ``folder`` (never over a file), as a scanner would (for tests,
    benchmarks, or a PACS that takes only DICOM). ``reverse`` writes files and instance numbers in reverse slice
    order; ``positions``/``orientations`` override a slice's ImagePositionPatient / ImageOrientationPatient
    (strings ``"x\\y\\z"``; to make broken series). Returns the files in slice order."""
    with kept_locale():
        return _write(image, Path(folder), uid, patient, number, description, reverse, positions, orientations, prefix)


@contextmanager
def kept_locale() -> Iterator[None]:
    """GDCM's DICOM writer sets the process locale to "C" (then subprocess output is decoded as ASCII): restore it."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write(image: sitk.Image, folder: Path, uid: str, patient: str, number: int, description: str, reverse: bool,
           positions: Sequence | None, orientations: Sequence | None, prefix: str) -> list[Path]:
    depth = image.GetDepth()
    taken = [folder / f"{prefix}{n + 1:04d}.dcm" for n in range(depth) if (folder / f"{prefix}{n + 1:04d}.dcm").exists()]
    if taken:
        raise ForeignPathError(taken[0], f"exists: a DICOM series never overwrites a file ({len(taken)} of its {depth} "
                                         "file names are taken; nothing was changed): choose another folder or prefix")
    folder.mkdir(parents=True, exist_ok=True)
    d = image.GetDirection()
    iop = "\\".join(f"{v:.10g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    order = list(range(depth))[::-1] if reverse else list(range(depth))
    files = [None] * depth
    for n, k in enumerate(order):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": "MR", "0010|0020": patient, "0010|0010": patient, "0020|000d": uid + ".0",
            "0020|000e": uid, "0020|0052": uid + ".9", "0020|0011": str(number), "0008|103e": description,
            "0008|0031": time.strftime("%H%M%S"), "0008|0021": time.strftime("%Y%m%d"),
            "0020|0037": orientations[k] if orientations is not None and orientations[k] else iop,
            "0020|0032": positions[k] if positions is not None and positions[k] else
            "\\".join(f"{v:.10g}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(n + 1), "0008|0018": f"{uid}.{n + 1}", "0018|0050": f"{image.GetSpacing()[2]:.10g}",
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        path = folder / f"{prefix}{n + 1:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(slice_)
        files[k] = path
    return files
