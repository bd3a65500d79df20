"""Apply a plan to scans once: in-plane resampling and normalisation, cached on disk per plan.

Training reads every volume many times; decoding ``.nii.gz``, resampling and z-scoring happen here
once and the result is kept as ``.npz`` under ``<cache_dir>/<plan name>/``. Each file's name
carries a key made of the plan's preprocessing decisions and the source files' size and mtime, so
editing the plan or replacing a scan makes a new entry instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.atomic import atomic_path
from bundle.data.case import Case
from bundle.data.layouts import LABEL_KEYS, LEGACY_SCAR_LABELS, load_case
from bundle.ownership import claim_folder
from bundle.parallel import default_workers, ordered_map
from bundle.planning.split import split_records
from bundle.preprocessing.image import preprocess_image, resample_in_plane

logger = logging.getLogger(__name__)

CACHE_VERSION = 2
"""Bump when the preprocessing code changes what it writes."""

CACHE_KIND = "preprocessing cache"
"""The kind of folder (:mod:`bundle.ownership`) ``cache_dir`` is claimed as before the first entry is written."""


def preprocessing_decisions(plan: dict) -> dict:
    """The plan's decisions that change preprocessed arrays (the cache key's plan part)."""
    decisions = plan["decisions"]
    norm = decisions["normalization"]["value"]
    return {
        "version": CACHE_VERSION,
        "target_spacing": decisions["target_spacing"]["value"],
        "normalization": {k: norm.get(k) for k in ("scheme", "epsilon", "clip", "clip_bounds_zscore")},
        "resampling": decisions["resampling"]["value"],
    }


def cache_key(plan: dict, record: dict) -> str:
    """12 hex digits naming ``record``'s preprocessed file under ``plan``."""
    files = {}
    for key in ("image", *LABEL_KEYS):
        if record.get(key):
            stat = Path(record[key]).stat()
            files[key] = [str(Path(record[key]).resolve()), stat.st_size, stat.st_mtime_ns]
    content = {"plan": preprocessing_decisions(plan), "files": files}
    if record.get("scar_labels") not in (None, LEGACY_SCAR_LABELS):  # (keys of older caches stay as they were)
        content["scar_labels"] = record["scar_labels"]
    text = json.dumps(content, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def preprocess_case(case: Case, plan: dict) -> dict:
    """Resample ``case`` in-plane to the plan's spacing and normalise it; returns arrays and metadata."""
    image, spacing = preprocess_image(case.image, case.spacing, plan)
    label = case.label
    if tuple(spacing) != tuple(float(s) for s in case.spacing):
        label = resample_in_plane(label.astype(np.uint8), case.spacing, spacing[:2], sitk.sitkNearestNeighbor)
    return {
        "image": image,
        "label": label.astype(np.uint8),
        "spacing": np.asarray(spacing, dtype=np.float64),
    }


def _load_npz(path: Path) -> dict:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def cache_path(record: dict, plan: dict, cache_dir: str | Path) -> Path:
    """Where ``record`` preprocessed under ``plan`` is cached."""
    return Path(cache_dir) / plan["name"] / f"{record['scan']}-{cache_key(plan, record)}.npz"


def preprocessed(record: dict, plan: dict, cache_dir: str | Path | None, write_cache: bool = True) -> dict:
    """``record`` preprocessed under ``plan``: read from the cache when present, else computed (and cached
    unless ``write_cache`` is False).

    Returns ``image`` (float32, (z, y, x)), ``label`` (uint8, 0/1/2), ``spacing`` (x, y, z mm) and
    the record's ``scan``, ``patient`` and ``ablation``.
    """
    meta = {k: record.get(k, "") for k in ("scan", "patient", "ablation")}
    path = None
    if cache_dir is not None:
        path = cache_path(record, plan, cache_dir)
        if path.is_file():
            try:
                return {**_load_npz(path), **meta}
            except (OSError, ValueError, KeyError) as err:  # a damaged cache entry is rebuilt, not fatal
                logger.warning("rebuilding damaged cache entry %s (%s)", path, err)
    arrays = preprocess_case(load_case(record), plan)
    if path is not None and write_cache:
        claim_folder(cache_dir, CACHE_KIND)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
    return {**arrays, **meta}


def load_split(
    plan: dict, split: str, dataset_dir: str | Path, layout: str, cache_dir: str | Path | None = None,
    csv: str | None = None, write_cache: bool = True, fold: int | None = None,
) -> list[dict]:
    """Preprocess (or read from the cache) every scan of a split of the plan (of its ``fold``-th cross-validation
    fold when given); ``write_cache=False`` never writes (scans missing from the cache are preprocessed in memory)."""
    records = split_records(plan, split, dataset_dir, layout, csv, fold)
    cases = []
    for i, record in enumerate(records, 1):
        cases.append(preprocessed(record, plan, cache_dir, write_cache))
        logger.info("preprocessed %s scan %d/%d: %s", split, i, len(records), record["scan"])
    return cases


def _cache_entry(record: dict, plan: dict, cache_dir: str | Path) -> None:
    """Write one scan's cache entry in a worker; returns nothing, so no preprocessed scan is pickled back."""
    preprocessed(record, plan, cache_dir)


def cache_split(plan: dict, split: str, dataset_dir: str | Path, layout: str, cache_dir: str | Path,
                workers: int | None = None) -> int:
    """Write the cache entries of a split that are missing (without reading those present); returns how many.

    ``workers`` processes preprocess the scans (default: one per core for 8 scans or more); each entry is written
    atomically by the process that made it, so the cache does not depend on it. The first failing scan's error is
    raised once the others are written.
    """
    records = split_records(plan, split, dataset_dir, layout)
    missing = [r for r in records if not cache_path(r, plan, cache_dir).is_file()]
    if missing:  # claimed here once, before the workers write into it (each would otherwise claim it at once)
        claim_folder(cache_dir, CACHE_KIND)
    work = partial(_cache_entry, plan=plan, cache_dir=str(cache_dir))
    errors = []
    for i, (record, _, err) in enumerate(ordered_map(work, missing, default_workers(len(missing), workers)), 1):
        if err is not None:
            logger.error("could not cache %s scan %s: %s", split, record["scan"], err)
            errors.append(err)
            continue
        logger.info("cached %s scan %d/%d: %s", split, i, len(missing), record["scan"])
    if errors:
        raise errors[0]
    return len(missing)
