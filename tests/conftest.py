"""Shared fixtures: the real CARMA LGE fixtures and temporary dataset folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def carma_path() -> Path:
    """Folder of the Cardiac MRI Toolkit fixtures: ``$CARMA_DIR`` or ``../shared/data/carma``."""
    return Path(os.environ.get("CARMA_DIR", REPO.parent / "shared" / "data" / "carma"))


@pytest.fixture(scope="session")
def carma_dir() -> Path:
    path = carma_path()
    if not (path / "autoscar-data.nrrd").is_file():
        pytest.skip(f"CARMA fixtures not found in {path} (set CARMA_DIR)")
    return path
