"""Dataset layouts on disk: writers, readers, and loading a record into a Case.

A dataset is read into *records*: plain dicts with the paths of a scan's files and its ids::

    {"image": str, "endo": str | None, "wall": str | None, "la": str | None, "scar": str | None,
     "patient": str, "scan": str, "ablation": "pre" | "post" | "unknown", "layout": str}

:func:`load_case` turns a record into a :class:`~bundle.data.case.Case` with the bundle's label map
(0 background, 1 LA = cavity + wall, 2 scar). Layouts:

``miccai2018``
    ``<root>/Training Set/<id>/lgemri.nrrd``, ``laendo.nrrd`` (cavity), optional ``lawall.nrrd``
    (also ``<root>/train/<id>/``). No scar labels: wall = lawall or the toolkit wall; no scar by default
    (``scar_labels`` ``none``), or the toolkit's k-means scar (``toolkit``, :mod:`bundle.data.toolkit`).
``lascarqs2022``
    ``<root>/train_N/enhanced.nii.gz``, ``atriumSegImgMO.nii.gz`` (cavity),
    ``scarSegImgM.nii.gz`` (scar). LA = cavity + toolkit wall; the scar must lie inside it.
``datalist``
    a MONAI/Decathlon ``dataset.json`` whose ``training`` entries carry ``image``, ``la``,
    optional ``scar``, ``patient``, ``ablation`` and ``scan``.

The first two take patient grouping and pre/post ablation from an optional CSV
(``pre_post_ablation.csv``: ``Patient Code``, ``post_ablation?``, optional ``Patient``).

Where the scar labels come from is the label set, :data:`SCAR_LABELS` (``scar_labels``, fixed in the plan):
``manual`` (the layout's scar files; a scan without one has no scar), ``toolkit`` (those, else the toolkit's
k-means scar of the cavity) or ``none`` (no scar at all: the LA alone is trained and scored).
"""

from __future__ import annotations

import csv
import io as _stringio
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.atomic import atomic_write_text
from bundle.data.case import ABLATION_STATES, Case
from bundle.errors import DatasetError
from bundle.data.io import case_geometry, check_same_geometry, image_suffix, read_image, write_image
from bundle.data.labels import LABEL_NAMES, compose_label
from bundle.data.toolkit import kmeans_scar, protocol_description, toolkit_wall

LAYOUTS = ("miccai2018", "lascarqs2022", "datalist")

CSV_NAME = "pre_post_ablation.csv"
CSV_CODE, CSV_POST, CSV_PATIENT = "Patient Code", "post_ablation?", "Patient"

MICCAI_SET_FOLDERS = ("Training Set", "train")
MICCAI_IMAGE, MICCAI_ENDO, MICCAI_WALL = "lgemri.nrrd", "laendo.nrrd", "lawall.nrrd"
LASCARQS_IMAGE, LASCARQS_CAVITY, LASCARQS_SCAR = "enhanced.nii.gz", "atriumSegImgMO.nii.gz", "scarSegImgM.nii.gz"
DATALIST_NAME = "dataset.json"

LABEL_KEYS = ("endo", "wall", "la", "scar")

SCAR_LABELS = ("manual", "toolkit", "none")
"""The label sets: where a scan's scar label comes from (see the module's docstring)."""

DEFAULT_SCAR_LABELS = {"miccai2018": "none", "lascarqs2022": "manual", "datalist": "manual"}
"""The label set of each layout unless the plan says otherwise: the 2018 challenge has no scar labels."""

LEGACY_SCAR_LABELS = "toolkit"
"""The label set of a plan made before label sets existed (the toolkit's scar where no scar file is given)."""

_POST = {"yes", "y", "true", "1", "post"}
_PRE = {"no", "n", "false", "0", "pre"}
_UNKNOWN = {"", "unknown", "nan", "na", "n/a", "none", "?"}
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# ------------------------------------------------------------------------------------------ helpers


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def scar_label_set(layout: str, scar_labels: str | None = None) -> str:
    """``scar_labels`` checked, or the layout's default (:data:`DEFAULT_SCAR_LABELS`) for None."""
    _check_layout(layout)
    if scar_labels is None:
        return DEFAULT_SCAR_LABELS[layout]
    if scar_labels not in SCAR_LABELS:
        raise ValueError(f"unknown scar_labels {scar_labels!r}; choose one of {', '.join(SCAR_LABELS)}")
    return scar_labels


def plan_scar_labels(plan: dict) -> str:
    """The label set a plan was made with (:data:`LEGACY_SCAR_LABELS` for a plan older than label sets)."""
    return str(plan.get("label_protocol", {}).get("scar_labels", LEGACY_SCAR_LABELS))


def _natural_key(text: str) -> list:
    """Sort key that puts ``train_2`` before ``train_10``."""
    parts = re.split(r"(\d+)", text)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)] + [text]


def _case_folders(folder: Path) -> list[Path]:
    """Non-hidden sub-folders of ``folder``."""
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith((".", "__"))]


def _required(folder: Path, name: str, layout: str) -> str:
    path = folder / name
    if not path.is_file():
        raise DatasetError(path, f"file not found (required by the {layout} layout)")
    return str(path)


def _record(layout: str, image: str, scan: str, patient: str = "", ablation: str = "unknown", **labels) -> dict:
    record = {"image": str(image)}
    record.update({key: (str(labels[key]) if labels.get(key) else None) for key in LABEL_KEYS})
    record.update({"patient": patient or scan, "scan": scan, "ablation": ablation, "layout": layout})
    return record


def safe_name(name: str, what: str = "scan id") -> str:
    """``name`` if it is a safe single file name (letters, digits, '.', '_', '-'; not '.' or '..'), else ValueError."""
    if not name or not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"{what} {name!r} is not a safe file name (letters, digits, '.', '_', '-')")
    return name


# ------------------------------------------------------------------------------- pre/post ablation


def parse_ablation(value: object, path: str | Path, where: str = "") -> str:
    """``"pre"``, ``"post"`` or ``"unknown"`` from yes/no/true/false/1/0/post/pre (any case)."""
    text = str(value).strip().lower() if value is not None else ""
    if text in _POST:
        return "post"
    if text in _PRE:
        return "pre"
    if text in _UNKNOWN:
        return "unknown"
    raise DatasetError(path, f"{where}ablation value {value!r} is not one of yes/no/true/false/1/0/post/pre/unknown")


def read_ablation_csv(path: str | Path) -> dict[str, dict]:
    """``{Patient Code: {"patient": str, "ablation": str}}`` from a pre/post-ablation CSV.

    The patient is the ``Patient`` column where present and non-empty, else the code.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "file not found")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(path, f"cannot be read: {err}") from None
    if not rows:
        raise DatasetError(path, "is empty")
    header = [h.strip().lower() for h in rows[0]]
    if CSV_CODE.lower() not in header or CSV_POST.lower() not in header:
        raise DatasetError(path, f"needs columns '{CSV_CODE}' and '{CSV_POST}'; found {rows[0]}")
    i_code, i_post = header.index(CSV_CODE.lower()), header.index(CSV_POST.lower())
    i_patient = header.index(CSV_PATIENT.lower()) if CSV_PATIENT.lower() in header else None
    table: dict[str, dict] = {}
    for line, row in enumerate(rows[1:], start=2):
        row = row + [""] * (len(header) - len(row))
        code = row[i_code].strip()
        if not code:
            continue
        if code in table:
            raise DatasetError(path, f"line {line}: {CSV_CODE} {code!r} appears twice")
        patient = row[i_patient].strip() if i_patient is not None else ""
        table[code] = {"patient": patient or code, "ablation": parse_ablation(row[i_post], path, f"line {line}: ")}
    return table


def write_ablation_csv(records: Iterable[dict], path: str | Path) -> Path:
    """Write the pre/post-ablation CSV (``Patient Code``, ``post_ablation?``, ``Patient``) atomically."""
    post = {"post": "yes", "pre": "no", "unknown": ""}
    buffer = _stringio.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([CSV_CODE, CSV_POST, CSV_PATIENT])
    for r in records:
        writer.writerow([r["scan"], post[r["ablation"]], r["patient"]])
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)


def _apply_csv(records: list[dict], root: Path, csv_path: str | Path | None) -> None:
    """Set patient and ablation of records from the explicit CSV, else ``<root>/pre_post_ablation.csv``."""
    if csv_path is None and (root / CSV_NAME).is_file():
        csv_path = root / CSV_NAME
    if csv_path is None:
        return
    table = read_ablation_csv(csv_path)
    for record in records:
        if record["scan"] in table:
            record.update(table[record["scan"]])


# ----------------------------------------------------------------------------------------- readers


def _miccai_set_folder(root: Path) -> Path:
    for name in MICCAI_SET_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if any((d / MICCAI_IMAGE).is_file() for d in _case_folders(root)):
        return root
    raise DatasetError(
        root, f"no MICCAI 2018 cases: expected a 'Training Set' or 'train' folder of case folders with {MICCAI_IMAGE}"
    )


def _read_miccai(root: Path) -> list[dict]:
    folder = _miccai_set_folder(root)
    records = []
    for case in _case_folders(folder):
        wall = case / MICCAI_WALL
        records.append(
            _record(
                "miccai2018",
                _required(case, MICCAI_IMAGE, "miccai2018"),
                case.name,
                endo=_required(case, MICCAI_ENDO, "miccai2018"),
                wall=wall if wall.is_file() else None,
            )
        )
    if not records:
        raise DatasetError(folder, "holds no case folders")
    return records


def _read_lascarqs(root: Path) -> list[dict]:
    folder = root / "train_data" if (root / "train_data").is_dir() else root
    records = [
        _record(
            "lascarqs2022",
            _required(case, LASCARQS_IMAGE, "lascarqs2022"),
            case.name,
            endo=_required(case, LASCARQS_CAVITY, "lascarqs2022"),
            scar=_required(case, LASCARQS_SCAR, "lascarqs2022"),
        )
        for case in _case_folders(folder)
    ]
    if not records:
        raise DatasetError(folder, "holds no case folders")
    return records


def _stem(path: str) -> str:
    """File name without its image suffix (``.nii.gz`` counted as one)."""
    name = Path(path).name
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _datalist_path(entry: dict, key: str, base: Path, json_path: Path, index: int, required: bool) -> str | None:
    value = entry.get(key)
    if value in (None, ""):
        if required:
            raise DatasetError(json_path, f"training entry {index} has no '{key}'")
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise DatasetError(json_path, f"training entry {index}: '{key}' must be one file path, found {value!r}")
    path = Path(value) if Path(value).is_absolute() else base / value
    path = Path(os.path.normpath(path))
    if not path.is_file():
        raise DatasetError(path, f"file not found (listed in {json_path.name}, training entry {index})")
    return str(path)


def _read_datalist(root: Path) -> list[dict]:
    json_path = root / DATALIST_NAME if root.is_dir() else root
    if not json_path.is_file():
        raise DatasetError(json_path, "file not found (the datalist layout needs it)")
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(json_path, f"cannot be read: {err}") from None
    entries = raw.get("training") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DatasetError(json_path, "needs a 'training' list of entries")
    if not entries:
        raise DatasetError(json_path, "lists no training cases")
    from monai.data import load_decathlon_datalist  # imported here: it pulls in torch (seconds)

    base = json_path.absolute().parent  # MONAI joins relative entries to base: keep it absolute
    # MONAI resolves the paths; ids come from the raw entries (MONAI may turn an id that names a file into a path).
    resolved = load_decathlon_datalist(json_path, is_segmentation=True, data_list_key="training", base_dir=base)
    records, seen = [], set()
    for index, (entry, item) in enumerate(zip(entries, resolved)):
        image = _datalist_path(item, "image", base, json_path, index, required=True)
        scan = str(entry.get("scan") or _stem(image))
        if scan in seen:
            raise DatasetError(json_path, f"scan id {scan!r} appears twice")
        seen.add(scan)
        records.append(
            _record(
                "datalist",
                image,
                scan,
                patient=str(entry.get("patient") or scan),
                ablation=parse_ablation(entry.get("ablation"), json_path, f"training entry {index}: "),
                la=_datalist_path(item, "la", base, json_path, index, required=True),
                scar=_datalist_path(item, "scar", base, json_path, index, required=False),
            )
        )
    return records


def read_dataset(root: str | Path, layout: str, csv: str | None = None) -> list[dict]:
    """List a dataset's cases as records, sorted by scan id (numbers in natural order).

    ``csv`` names a pre/post-ablation CSV for ``miccai2018`` and ``lascarqs2022``; without it
    ``<root>/pre_post_ablation.csv`` is used when present, else ablation is ``"unknown"`` and
    the patient is the folder id. ``root`` may be the ``dataset.json`` itself for ``datalist``.

    Raises:
        DatasetError: missing root, no cases, a case missing a required file, a bad CSV or JSON.
    """
    _check_layout(layout)
    root = Path(root)
    if not root.exists():
        raise DatasetError(root, "dataset folder not found")
    if layout == "datalist":
        if csv is not None:
            raise ValueError("the datalist layout takes patient and ablation from its JSON entries, not from a CSV")
        records = _read_datalist(root)
    else:
        if not root.is_dir():
            raise DatasetError(root, "is not a folder")
        records = _read_miccai(root) if layout == "miccai2018" else _read_lascarqs(root)
        _apply_csv(records, root, csv)
    return sorted(records, key=lambda r: _natural_key(r["scan"]))


# ------------------------------------------------------------------------------------------ loading


def check_mask_values(array: np.ndarray, path: str | Path) -> None:
    """Raise unless a mask holds 0 and at most one other value, a positive integer (1, 255, 420, ...)."""
    values = array[array != 0]
    if values.size == 0:
        return
    lo, hi = values.min(), values.max()
    if lo == hi and np.isfinite(lo) and lo > 0 and float(lo) == round(float(lo)):
        return
    found = np.unique(array)
    listing = ", ".join(f"{v:g}" for v in found[:10].tolist())
    if found.size > 10:
        listing += f", ... ({found.size} values)"
    raise DatasetError(path, f"a binary mask must hold 0 and one positive integer value; found values [{listing}]")


def read_mask(path: str | Path, reference: sitk.Image | Case, reference_path: str | Path) -> np.ndarray:
    """A binary mask file as a bool ``(z, y, x)`` array, checked for values and for the reference's grid."""
    mask = read_image(path)
    check_same_geometry(reference, mask, reference_path, path)
    array = sitk.GetArrayFromImage(mask)
    check_mask_values(array, path)
    return array != 0


def load_case(record: dict, scar_labels: str | None = None) -> Case:
    """Read a record's image and labels into a Case with the bundle's label map (uint8 0/1/2).

    Rules, whatever the layout: the wall is the given wall, else the toolkit wall of the
    cavity (``endo``); the LA is the given LA, else cavity | wall. The scar, by the label set (``scar_labels``,
    else the record's ``scar_labels``, else the layout's default: :func:`scar_label_set`): ``none``, no scar;
    otherwise the given scar (which must lie inside the LA), else with ``toolkit`` the toolkit's k-means scar when a
    cavity is known, else none. ``cavity``/``wall`` are filled when known; ``meta["label_protocol"]`` tells how.
    """
    label_set = scar_label_set(record["layout"], scar_labels or record.get("scar_labels"))
    image_path = Path(record["image"])
    image = read_image(image_path)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    masks = {key: read_mask(record[key], image, image_path) for key in LABEL_KEYS if record.get(key)}
    cavity = masks.get("endo")
    wall = masks.get("wall")
    if wall is None and cavity is not None:
        wall = toolkit_wall(cavity)
    if "la" in masks:
        la = masks["la"]
    elif cavity is not None:
        la = cavity | wall
    else:
        raise DatasetError(image_path, "the record names no LA label (neither 'la' nor 'endo')")
    if label_set == "none":
        scar = None
    elif "scar" in masks:
        scar = masks["scar"]
        outside = int((scar & ~la).sum())
        if outside:
            raise DatasetError(record["scar"], f"{outside} of {int(scar.sum())} scar voxels lie outside the LA")
    elif label_set == "toolkit" and cavity is not None:
        scar = kmeans_scar(array, cavity, wall)
    else:
        scar = None
    return Case(
        image=array,
        label=compose_label(la, scar),
        **case_geometry(image),
        patient=record.get("patient") or record.get("scan", ""),
        scan=record.get("scan", ""),
        ablation=record.get("ablation", "unknown"),
        cavity=cavity,
        wall=wall,
        meta={"label_protocol": label_protocol(record["layout"], label_set), "record": dict(record)},
    )


def label_protocol(layout: str, scar_labels: str | None = None) -> dict:
    """JSON-able description of how a layout's labels are obtained (given or derived, and how), with its label set
    (``scar_labels``: :func:`scar_label_set`)."""
    label_set = scar_label_set(layout, scar_labels)
    label_map = {str(k): v for k, v in LABEL_NAMES.items()}
    toolkit = protocol_description()
    derived_wall = {"source": "derived", "method": "toolkit axial dilation of the cavity minus the cavity"}
    if layout == "miccai2018":
        parts = {
            "cavity": {"source": "given", "file": MICCAI_ENDO},
            "wall": {"source": "given", "file": MICCAI_WALL, "fallback": derived_wall},
            "la": {"source": "derived", "method": "cavity | wall"},
            "scar": {"source": "derived", "method": "toolkit automatic k-means scar (no scar labels in this release)"},
        }
    elif layout == "lascarqs2022":
        parts = {
            "cavity": {"source": "given", "file": LASCARQS_CAVITY},
            "wall": derived_wall,
            "la": {"source": "derived", "method": "cavity | wall"},
            "scar": {"source": "given", "file": LASCARQS_SCAR, "check": "must lie inside the LA"},
        }
    else:
        parts = {
            "cavity": {"source": "none"},
            "wall": {"source": "none"},
            "la": {"source": "given", "key": "la"},
            "scar": {"source": "given", "key": "scar", "optional": True, "check": "must lie inside the LA"},
        }
    if label_set == "none":
        parts["scar"] = {"source": "none", "method": "no scar labels: the LA alone is trained and scored"}
    elif label_set == "manual" and parts["scar"]["source"] == "derived":
        parts["scar"] = {"source": "none", "method": "no scar files in this layout (scar_labels manual)"}
    elif label_set == "toolkit" and layout != "miccai2018":
        parts["scar"] = {**parts["scar"], "fallback": "toolkit automatic k-means scar of the cavity"}
    return {"layout": layout, "scar_labels": label_set, "label_map": label_map, **parts, "toolkit": toolkit}


# ----------------------------------------------------------------------------------------- writers


def _mask_parts(case: Case, layout: str, wall_file: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    if case.cavity is None or (wall_file and case.wall is None):
        needs = "case.cavity and case.wall" if wall_file else "case.cavity"
        raise ValueError(f"case {case.scan!r}: the {layout} layout needs {needs}")
    cavity = np.asarray(case.cavity) > 0
    wall = np.asarray(case.wall) > 0 if case.wall is not None else None
    return cavity, wall


def _next_train_name(root: Path) -> str:
    used = [int(m.group(1)) for p in root.glob("train_*") if (m := re.fullmatch(r"train_(\d+)", p.name))]
    return f"train_{max(used, default=0) + 1}"


def _write_miccai(case: Case, root: Path, name: str, wall_file: bool = True) -> dict:
    cavity, wall = _mask_parts(case, "miccai2018", wall_file)
    folder = root / MICCAI_SET_FOLDERS[0] / name
    image = write_image(case.image, folder / MICCAI_IMAGE, case, dtype=image_dtype(case.image))
    endo = write_image(cavity.astype(np.uint8) * 255, folder / MICCAI_ENDO, case)
    wall_path = write_image(wall.astype(np.uint8) * 255, folder / MICCAI_WALL, case) if wall_file else None
    return _record("miccai2018", image, name, case.patient, case.ablation, endo=endo, wall=wall_path)


def _write_lascarqs(case: Case, root: Path, name: str) -> dict:
    cavity, _ = _mask_parts(case, "lascarqs2022")
    # LAScarQS defines the LA as cavity + the toolkit's axial wall: scar beyond it (on the caps of
    # the LA above or below the cavity, which an in-plane dilation misses) is not representable.
    scar = (np.asarray(case.label) == 2) & (cavity | toolkit_wall(cavity))
    folder = root / name
    image = write_image(case.image, folder / LASCARQS_IMAGE, case, dtype=image_dtype(case.image))
    cav = write_image(cavity.astype(np.uint8), folder / LASCARQS_CAVITY, case)
    scar_path = write_image(scar.astype(np.uint8), folder / LASCARQS_SCAR, case)
    return _record("lascarqs2022", image, name, case.patient, case.ablation, endo=cav, scar=scar_path)


def _write_datalist(case: Case, root: Path, name: str) -> dict:
    label = np.asarray(case.label)
    image = write_image(case.image, root / "imagesTr" / f"{name}.nii.gz", case, dtype=image_dtype(case.image))
    la = write_image((label > 0).astype(np.uint8), root / "labelsTr" / f"{name}_la.nii.gz", case)
    scar = write_image((label == 2).astype(np.uint8), root / "labelsTr" / f"{name}_scar.nii.gz", case)
    return _record("datalist", image, name, case.patient, case.ablation, la=la, scar=scar)


def image_dtype(image: np.ndarray) -> type:
    """How an image is stored: ``uint16`` when every voxel is an integer in its range (as scanners write LGE;
    a quarter of float32's size on disk and three times faster to compress), else ``float32``."""
    a = np.asarray(image)
    if np.issubdtype(a.dtype, np.integer):
        ok = a.size == 0 or (int(a.min()) >= 0 and int(a.max()) <= np.iinfo(np.uint16).max)
    else:
        ok = a.size == 0 or (float(a.min()) >= 0 and float(a.max()) <= np.iinfo(np.uint16).max
                             and bool(np.all(np.rint(a) == a)))
    return np.uint16 if ok else np.float32


def write_case(case: Case, root: str | Path, layout: str, *, name: str | None = None,
               wall_file: bool | None = None) -> dict:
    """Write one case in a layout (image uint16 or float32, see :func:`image_dtype`; masks uint8) and return
    its record.

    ``name`` is the case folder / scan id: by default ``case.scan``, or for ``lascarqs2022``
    the next free ``train_N``. ``wall_file`` (``miccai2018`` only, default true) also writes ``lawall.nrrd``; false
    writes the challenge's own form, the cavity alone. The layout's index file is written by :func:`write_dataset`.
    """
    _check_layout(layout)
    if wall_file is not None and layout != "miccai2018":
        raise ValueError(f"wall_file applies to the miccai2018 layout only, not {layout!r}")
    if case.ablation not in ABLATION_STATES:
        raise ValueError(f"case {case.scan!r}: ablation {case.ablation!r} is not one of {ABLATION_STATES}")
    root = Path(root)
    if name is None:
        name = _next_train_name(root) if layout == "lascarqs2022" else case.scan
    name = safe_name(name)
    if layout == "miccai2018":
        return _write_miccai(case, root, name, wall_file is not False)
    return {"lascarqs2022": _write_lascarqs, "datalist": _write_datalist}[layout](case, root, name)


def _datalist_json(records: list[dict], root: Path) -> str:
    def rel(path: str | None) -> str | None:
        return Path(os.path.relpath(path, root)).as_posix() if path else None

    entries = [
        {
            "image": rel(r["image"]),
            "la": rel(r["la"]),
            "scar": rel(r["scar"]),
            "scan": r["scan"],
            "patient": r["patient"],
            "ablation": r["ablation"],
        }
        for r in records
    ]
    document = {
        "name": "LA and atrial scar, 3D LGE CMR",
        "description": "la: binary LA (cavity + wall); scar: binary atrial scar inside the LA",
        "tensorImageSize": "3D",
        "modality": {"0": "LGE-MRI"},
        "labels": {str(k): v for k, v in LABEL_NAMES.items()},
        "numTraining": len(entries),
        "training": entries,
    }
    return json.dumps(document, indent=2) + "\n"


def write_index(records: list[dict], root: str | Path, layout: str) -> Path:
    """Write a layout's index of already written cases: ``dataset.json`` (datalist) or ``pre_post_ablation.csv``."""
    _check_layout(layout)
    root = Path(root)
    if not records:
        raise ValueError("no cases to write")
    if layout == "datalist":
        return atomic_write_text(root / DATALIST_NAME, _datalist_json(records, root))
    return write_ablation_csv(records, root / CSV_NAME)


def write_dataset(cases: Iterable[Case], root: str | Path, layout: str) -> list[dict]:
    """Write all cases in a layout, then its index file; return the records in the order written.

    ``lascarqs2022`` folders are ``train_1 .. train_N`` in the given order. The index is
    ``pre_post_ablation.csv`` (miccai2018, lascarqs2022) or ``dataset.json`` (datalist).
    """
    _check_layout(layout)
    root = Path(root)
    records: list[dict] = []
    for i, case in enumerate(cases, start=1):
        name = f"train_{i}" if layout == "lascarqs2022" else safe_name(case.scan)
        if any(r["scan"] == name for r in records):
            raise ValueError(f"scan id {name!r} appears twice")
        records.append(write_case(case, root, layout, name=name))
    write_index(records, root, layout)
    return records
