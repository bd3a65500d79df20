"""Shared fixtures: the real CARMA LGE fixtures and temporary dataset folders."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
"""The bundle root: commands run from here."""

TINY_SHAPE_ZYX = (12, 64, 64)
TINY_SPACING = (2.0, 2.0, 4.0)  # (x, y, z) mm
TINY_ORIGIN = (-12.5, 30.25, 7.0)
"""A small grid of the ``tiny`` phantom's size and spacing, at an arbitrary origin (image and layout tests)."""

MICCAI_SPACING = (0.625, 0.625, 2.5)
"""The MICCAI 2018 scans' spacing (x, y, z) mm (inference and evaluation tests)."""


def carma_path() -> Path:
    """Folder of the Cardiac MRI Toolkit fixtures: ``$CARMA_DIR`` or ``../shared/data/carma``."""
    return Path(os.environ.get("CARMA_DIR", REPO.parent / "shared" / "data" / "carma"))


@pytest.fixture(scope="session")
def carma_dir() -> Path:
    path = carma_path()
    if not (path / "autoscar-data.nrrd").is_file():
        pytest.skip(f"CARMA fixtures not found in {path} (set CARMA_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> tuple[Path, dict]:
    """A 3-patient phantom dataset of the tiny profile (64 x 64 x 12) and its cpu-profile plan."""
    from bundle.data.phantom.dataset import synthesize_dataset
    from bundle.planning.run import plan_dataset

    root = tmp_path_factory.mktemp("tiny") / "phantom"
    synthesize_dataset(root, n_patients=3, profile="tiny", layout="datalist", seed=0)
    plan = plan_dataset(root, "datalist", name="tiny", out=root.parent / "tiny.json", profile="cpu")
    return root, plan


def real_looking_dataset(root: Path, layout: str, n_patients: int = 3, profile: str = "tinyfov") -> Path:
    """A dataset in ``layout`` as its users hold it, with nothing of the bundle's in it (no phantom manifest, no
    marker, no extra files), made from phantoms: the 2018 challenge's ``Training Set/<20-character id>/lgemri.nrrd``
    and ``laendo.nrrd`` (255 = cavity; no wall, no CSV), LAScarQS 2022's ``train_data/train_N/`` with its three NIfTI
    files, or a datalist of an in-house cohort (``dataset.json``, ``imagesTr/``, ``labelsTr/``). Returns ``root``
    (which must not exist)."""
    from bundle.data.phantom.dataset import synthesize_dataset

    build = root.parent / f".{root.name}-build"
    synthesize_dataset(build, n_patients=n_patients, profile=profile, layout=layout, seed=3)
    if layout == "miccai2018":
        for i, case in enumerate(sorted((build / "Training Set").iterdir())):
            ident = hashlib.sha1(case.name.encode()).hexdigest()[:20].upper()
            (root / "Training Set" / ident).mkdir(parents=True)
            for name in ("lgemri.nrrd", "laendo.nrrd"):
                shutil.copyfile(case / name, root / "Training Set" / ident / name)
    elif layout == "lascarqs2022":
        for case in sorted(p for p in build.iterdir() if p.name.startswith("train_")):
            shutil.copytree(case, root / "train_data" / case.name)
    else:
        for folder in ("imagesTr", "labelsTr"):
            shutil.copytree(build / folder, root / folder)
        datalist = json.loads((build / "dataset.json").read_text())
        datalist["name"] = "In-house LGE cohort"
        (root / "dataset.json").write_text(json.dumps(datalist, indent=1))
    shutil.rmtree(build)
    return root


def tree_snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` (hidden ones too): the SHA-1 of each file's bytes, ``dir`` for folders."""
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}
