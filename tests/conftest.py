"""Shared fixtures: the real CARMA LGE fixtures and temporary dataset folders."""

from __future__ import annotations

import os
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
