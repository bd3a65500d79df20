"""The bundle as a user runs it: metadata, and the `training` run id on the tiny phantom profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bundle.planning.planner import load_plan

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"


def test_configs_metadata_is_the_top_level_file():
    link = REPO / "configs" / "metadata.json"
    assert link.resolve() == (REPO / "metadata.json").resolve(), "configs/metadata.json must point at metadata.json"
    meta = json.loads(link.read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 2


def test_metadata_follows_the_model_zoo_schema():
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.is_file():
        pytest.skip(f"Model Zoo schema not found at {SCHEMA}")
    jsonschema.validate(json.loads((REPO / "metadata.json").read_text()), json.loads(SCHEMA.read_text()))


def test_training_run_prepares_data_and_plan(tmp_path):
    """`python -m monai.bundle run training` with small overrides synthesizes, plans, logs no ERROR."""
    data, plan_file = tmp_path / "phantom", tmp_path / "plans" / "tiny.json"
    cmd = [
        sys.executable, "-m", "monai.bundle", "run", "training", "--config_file", "configs/train.yaml",
        "--dataset_dir", str(data), "--plan_file", str(plan_file),
        "--phantom#n_patients", "3", "--phantom#profile", "tiny",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert " - ERROR - " not in log, log[-3000:]
    assert (data / "phantom.json").is_file() and (data / "dataset.json").is_file()
    plan = load_plan(plan_file)
    manifest = json.loads((data / "phantom.json").read_text())
    assert sorted(c["scan"] for c in plan["fingerprint"]["cases"]) == sorted(manifest["scans"])
    # a second run reuses data and plan, and refuses a plan that describes other scans
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    (data / "dataset.json").write_text((data / "dataset.json").read_text().replace('"P001_', '"X001_'))
    bad = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0
    assert "plan does not match the scans" in bad.stderr + bad.stdout
