"""Write a phantom cohort to disk in one of the dataset layouts."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from bundle.layouts import LAYOUTS, write_dataset
from bundle.phantom.generate import cohort, generate_scan
from bundle.phantom.profiles import get_profile

logger = logging.getLogger(__name__)

MANIFEST = "phantom.json"
"""Written last: a phantom dataset without it is incomplete and is rebuilt or refused."""


def is_complete(out: str | Path) -> bool:
    """Whether ``out`` holds a finished phantom dataset (its manifest exists)."""
    return (Path(out) / MANIFEST).is_file()


def synthesize_dataset(
    out: str | Path,
    n_patients: int = 16,
    profile: str = "miccai2018",
    layout: str = "datalist",
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Generate ``n_patients`` phantom patients (pre and/or post scans) and write them to ``out``.

    Refuses to write into a non-empty folder unless ``overwrite``. The manifest
    ``phantom.json`` (profile, seed, scans, timing) is written last, so an interrupted run is
    recognisable. Returns the manifest.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    prof = get_profile(profile)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: folder is not empty; pass overwrite=True to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = cohort(n_patients, seed)
    start = time.perf_counter()

    def scans():
        for i, spec in enumerate(specs, 1):
            t = time.perf_counter()
            case = generate_scan(spec, prof, seed)
            logger.info("phantom %d/%d %s (%.1f s)", i, len(specs), spec.scan, time.perf_counter() - t)
            yield case

    records = write_dataset(scans(), out, layout)
    manifest = {
        "generator": "bundle.phantom",
        "profile": prof.name,
        "layout": layout,
        "seed": seed,
        "n_patients": n_patients,
        "n_scans": len(records),
        "n_pre": sum(s.ablation == "pre" for s in specs),
        "n_post": sum(s.ablation == "post" for s in specs),
        "seconds": round(time.perf_counter() - start, 2),
        "scans": [s.scan for s in specs],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
