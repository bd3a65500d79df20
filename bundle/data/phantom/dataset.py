"""Write a phantom cohort to disk in one of the dataset layouts."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from bundle.atomic import atomic_write_text
from bundle.data.layouts import LAYOUTS, write_case, write_index
from bundle.data.phantom.generate import ScanSpec, cohort, generate_scan
from bundle.data.phantom.profiles import MIXED, get_profile
from bundle.errors import ForeignPathError
from bundle.ownership import folder_kind, replace_folder
from bundle.parallel import one_thread

logger = logging.getLogger(__name__)

MANIFEST = "phantom.json"
"""Written last: a phantom dataset without it is unfinished (and may be replaced by the bundle)."""

GENERATOR = "bundle.data.phantom"
"""The manifest's ``generator``."""

PHANTOM_KIND = "phantom dataset"
"""The kind of folder (:mod:`bundle.ownership`) the phantom generator writes; claimed before the first scan."""

SETTINGS = ("n_patients", "profile", "seed", "families")
"""What a ``phantom`` config block may set (besides ``enabled``)."""

_OFF = {"", "none", "null", "false", "no", "off", "0"}
_ON = {"true", "yes", "on", "1"}


def read_manifest(out: str | Path) -> dict | None:
    """The phantom generator's manifest of ``out`` (None when absent or not the generator's)."""
    try:
        document = json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) and document.get("generator") == GENERATOR else None


def is_complete(out: str | Path) -> bool:
    """Whether ``out`` holds a finished phantom dataset (the generator's manifest exists)."""
    return read_manifest(out) is not None


def scan_families(out: str | Path) -> dict[str, dict[str, str]]:
    """Each scan's generator families ({scan: {family: member}}) from the phantom manifest of ``out``; empty for a
    folder the generator did not write (a real dataset)."""
    manifest = read_manifest(out) or {}
    families = manifest.get("scan_families")
    return families if isinstance(families, dict) else {}


def is_phantom_folder(out: str | Path) -> bool:
    """Whether the phantom generator wrote ``out``: its marker (also left by an interrupted run) or a finished
    manifest (datasets written before markers existed)."""
    return folder_kind(out) == PHANTOM_KIND or is_complete(out)


def _switch(value: object, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise ValueError(f"{what} must be true or false, got {value!r}")


def phantom_settings(phantom: object) -> dict | None:
    """The synthesis settings of a config's ``phantom`` block, or None when the phantoms are off.

    Off: ``enabled: false`` (``--phantom#enabled false`` on the command line), ``phantom: null`` in the YAML, or the
    strings a command line passes for it (``null``, ``None``, ``false``, ...). A block without ``enabled`` is on.

    Raises:
        ValueError: an unknown key or a value that is neither a block nor off.
    """
    if phantom is None or isinstance(phantom, bool):
        if phantom is True:
            raise ValueError("phantom: true names no settings; give n_patients, profile and seed")
        return None
    if isinstance(phantom, str):
        if phantom.strip().lower() in _OFF:
            return None
        raise ValueError(f"phantom must be a block of {', '.join(SETTINGS)} (and enabled), or null; got {phantom!r}")
    if not isinstance(phantom, Mapping):
        raise ValueError(f"phantom must be a block of {', '.join(SETTINGS)} (and enabled), or null; got {phantom!r}")
    unknown = sorted(set(phantom) - {*SETTINGS, "enabled"})
    if unknown:
        raise ValueError(f"phantom: unknown settings {unknown}; known: enabled, {', '.join(SETTINGS)}")
    if not _switch(phantom.get("enabled", True), "phantom#enabled"):
        return None
    return {k: phantom[k] for k in SETTINGS if k in phantom}


def ensure_phantoms(out: str | Path, layout: str, settings: Mapping, hint: str = "") -> bool:
    """Synthesize the phantom cohort ``settings`` into ``out`` unless a finished one is there; returns whether it
    synthesized. Only an absent or empty folder, or one the generator wrote (an interrupted run), is written.

    Raises:
        ForeignPathError: ``out`` holds anything else (a real dataset): nothing is changed; ``hint`` says what to do.
    """
    out = Path(out)
    found = read_manifest(out)
    if found is not None:
        asked = {"layout": layout, **settings}
        differs = {k: (found.get(k), v) for k, v in asked.items() if found.get(k) != v}
        if differs:
            logger.warning("%s holds phantoms of other settings (found, asked: %s); they are kept: choose another "
                           "dataset_dir for new ones", out, differs)
        return False
    if out.is_dir() and any(out.iterdir()) and not is_phantom_folder(out):
        raise ForeignPathError(out, "holds files the bundle did not write (no phantom manifest): the phantom generator "
                                    "writes only into an absent or empty folder, or over phantoms it wrote, so "
                                    f"nothing was changed{'; ' + hint if hint else ''}")
    logger.info("synthesizing the phantom dataset into %s", out)
    synthesize_dataset(out, layout=layout, overwrite=True, **settings)
    return True


PARALLEL_MIN_VOXELS = 2_000_000
"""Scans of at least this many voxels are generated by a pool of processes (one scan per core); smaller ones
(the test profiles) in this process, where starting workers would cost more than it saves."""


def _default_workers(specs: list[ScanSpec], profile: str) -> int:
    grids = {s.grid or profile for s in specs}
    voxels = max(max(get_profile(g).in_plane_sizes) ** 2 * get_profile(g).slices[1] for g in grids)
    n_scans = len(specs)
    if voxels < PARALLEL_MIN_VOXELS:
        return 1
    return max(1, min(n_scans, os.cpu_count() or 1))


INTENSITIES = ("raw", "zscore", "mixed")
"""How a dataset stores its images: ``raw`` (the scanner's integer range, uint16), ``zscore`` (float32, each scan
z-scored over its volume, as common preprocessed copies of the 2018 challenge ship), ``mixed`` (every other scan)."""


def zscore(image: np.ndarray) -> np.ndarray:
    """A scan z-scored over its whole volume, float32."""
    image = np.asarray(image, dtype=np.float64)
    return ((image - image.mean()) / max(float(image.std()), 1e-8)).astype(np.float32)


def scan_storage(intensities: str, index: int) -> str:
    """How scan ``index`` (0-based, cohort order) of a dataset with ``intensities`` stores its image."""
    if intensities not in INTENSITIES:
        raise ValueError(f"unknown intensities {intensities!r}; choose one of {', '.join(INTENSITIES)}")
    return ("raw", "zscore")[index % 2] if intensities == "mixed" else intensities


def _write_scan(spec: ScanSpec, profile: str, seed: int, out: Path, layout: str, name: str,
                storage: str = "raw", wall_file: bool | None = None) -> tuple[dict, float]:
    """Generate one phantom scan and write it; returns its record and the seconds it took."""
    start = time.perf_counter()
    case = generate_scan(spec, profile, seed)
    if storage == "zscore":
        case.image = zscore(case.image)
    record = write_case(case, out, layout, name=name, wall_file=wall_file)
    return record, time.perf_counter() - start


def synthesize_dataset(
    out: str | Path,
    n_patients: int = 16,
    profile: str = MIXED,
    layout: str = "datalist",
    seed: int = 0,
    overwrite: bool = False,
    workers: int | None = None,
    families: Mapping[str, Sequence[str]] | None = None,
    intensities: str = "raw",
    wall_files: bool = True,
) -> dict:
    """Generate ``n_patients`` phantom patients (pre and/or post scans) and write them to ``out``.

    ``profile`` is a grid (``utah``, ``miccai2018``, ``siemens``, ``tinyfov``, ``tiny``) or ``mixed`` (each scan
    draws its grid); ``families`` restricts the families scans draw from (:mod:`bundle.data.phantom.families`).
    ``intensities`` (:data:`INTENSITIES`) stores the images raw, z-scored or both; ``wall_files`` false writes the
    ``miccai2018`` layout in the challenge's exact form, ``laendo.nrrd`` (the cavity) without ``lawall.nrrd``.

    Writes into an absent or empty folder; with ``overwrite``, also replaces a phantom dataset the generator wrote
    (finished or interrupted); never anything else (:class:`~bundle.errors.ForeignPathError`). The folder is claimed
    with the bundle's marker before the first scan, and the manifest ``phantom.json`` (profile, seed, scans, timing)
    is written last, so an interrupted run is recognisable. Returns the manifest. ``workers`` processes generate and write scans side by side
    (default: one per core for whole scans, none for the small test profiles); every scan is drawn from
    its own seeded stream, so the dataset does not depend on it.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not wall_files and layout != "miccai2018":
        raise ValueError(f"wall_files=False applies to the miccai2018 layout only (the {layout} layout writes no wall)")
    scan_storage(intensities, 0)  # checks the name
    specs = cohort(n_patients, seed, profile=profile, families=families)  # checks profile and families first
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and is_phantom_folder(out) and not overwrite:
        raise FileExistsError(f"{out}: holds a phantom dataset already; pass overwrite=True to replace it")
    replace_folder(out, PHANTOM_KIND, recognise=is_complete,
                   hint="phantoms are written into an absent or empty folder, or over phantoms the bundle wrote")
    names = [f"train_{i}" if layout == "lascarqs2022" else s.scan for i, s in enumerate(specs, 1)]
    workers = _default_workers(specs, profile) if workers is None else max(1, int(workers))
    start = time.perf_counter()
    storages = [scan_storage(intensities, i) for i in range(len(specs))]
    wall_file = bool(wall_files) if layout == "miccai2018" else None
    jobs = [(spec, profile, seed, out, layout, name, storage, wall_file)
            for spec, name, storage in zip(specs, names, storages)]
    if workers == 1:
        results = (_write_scan(*job) for job in jobs)
        records = _collect(results, specs)
    else:
        context = multiprocessing.get_context("spawn")  # never fork a process whose OpenMP threads may run
        with ProcessPoolExecutor(workers, mp_context=context, initializer=one_thread) as pool:
            records = _collect(pool.map(_write_scan, *zip(*jobs)), specs)
    write_index(records, out, layout)
    manifest = {
        "generator": GENERATOR,
        "profile": profile,
        "layout": layout,
        "seed": seed,
        "families": {k: list(v) for k, v in (families or {}).items()},
        "intensities": intensities,
        "wall_files": bool(wall_files) if layout == "miccai2018" else None,
        "n_patients": n_patients,
        "n_scans": len(records),
        "n_pre": sum(s.ablation == "pre" for s in specs),
        "n_post": sum(s.ablation == "post" for s in specs),
        "seconds": round(time.perf_counter() - start, 2),
        "workers": workers,
        "scans": [s.scan for s in specs],
        "scan_families": {name: {**s.families, "grid": s.grid or profile} for s, name in zip(specs, names)},
        "scan_storage": dict(zip(names, storages)),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _collect(results, specs: list[ScanSpec]) -> list[dict]:
    """The records of finished scans, in cohort order, each logged with its time."""
    records = []
    for i, (record, seconds) in enumerate(results, 1):
        logger.info("phantom %d/%d %s (%.1f s)", i, len(specs), specs[i - 1].scan, seconds)
        records.append(record)
    return records
