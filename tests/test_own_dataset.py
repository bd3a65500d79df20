"""A user's own dataset through the bundle's commands, in each layout its users hold it: nothing in it is ever
written, replaced or deleted, whatever way of turning the phantoms off (or of forgetting to) the user types.

The quick tests run ``monai.bundle``'s ``run`` in this process (it drops None-valued overrides exactly as the command
line does); the slow one runs README's "Training on your own dataset" commands as written, in a folder of their own,
then every other tool over the same dataset.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, real_looking_dataset, tree_snapshot

from bundle.errors import ForeignPathError

LAYOUTS = ("miccai2018", "lascarqs2022", "datalist")
README_DATASET = "/data/AtriaSeg2018"
"""The dataset folder README's commands name; the tests put their own dataset there."""


def _prepare(tmp_path: Path, data: Path, layout: str, config: Path | None = None, **overrides) -> None:
    from monai.bundle import scripts

    scripts.run("prepare", config_file=str(config or REPO / "configs" / "train.yaml"),
                logging_file=str(REPO / "configs" / "logging.conf"), dataset_dir=str(data), layout=layout,
                plan_file=str(tmp_path / "plans" / "own.json"), cache_dir=str(tmp_path / "cache"), **overrides)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_forgetting_to_turn_the_phantoms_off_is_refused_and_every_way_to_do_it_works(tmp_path, layout):
    data = real_looking_dataset(tmp_path / "data", layout, n_patients=2, profile="tiny")
    before = tree_snapshot(data)
    # forgotten, and `--phantom None` (dropped by monai.bundle, so the phantoms stay on): refused, nothing written
    for overrides in ({}, {"phantom": None}):
        with pytest.raises(RuntimeError) as raised:  # MONAI's config parser wraps what the expression raised
            _prepare(tmp_path, data, layout, **overrides)
        error = raised.value.__cause__
        assert isinstance(error, ForeignPathError) and str(error).startswith(str(data))
        assert "--phantom#enabled false" in str(error)
        assert tree_snapshot(data) == before and not (tmp_path / "plans").exists()
    # the ways to turn them off: the command line's strings, and the YAML edited
    edited = tmp_path / "train.yaml"
    text = (REPO / "configs" / "train.yaml").read_text()
    assert text.count("  enabled: true ") == 1
    edited.write_text(text.replace("  enabled: true ", "  enabled: false"))
    for config, overrides in ((None, {"phantom#enabled": "false"}), (None, {"phantom": "null"}),
                              (None, {"phantom#enabled": False}), (edited, {})):
        shutil.rmtree(tmp_path / "plans", ignore_errors=True)
        _prepare(tmp_path, data, layout, config, **overrides)
        assert (tmp_path / "plans" / "own.json").is_file(), (config, overrides)
        assert tree_snapshot(data) == before, (config, overrides)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)


def readme_commands() -> list[str]:
    """The command lines of README's "Training on your own dataset" block."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Training on your own dataset"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_command_over_a_users_dataset_leaves_it_unchanged(tmp_path, layout):
    """README's commands as written (for the 2018 challenge; the same with --layout for the others) train, evaluate
    and segment; inference into the dataset, jasgan-synthesize --overwrite and jasgan-plan into it are refused;
    jasgan-quantify reads its images. Afterwards the dataset is byte for byte what it was, with nothing added."""
    data = real_looking_dataset(tmp_path / "AtriaSeg2018", layout)
    before = tree_snapshot(data)
    user = tmp_path / "bundle"  # the bundle root as a user has it: configs/ beside what the commands write
    shutil.copytree(REPO / "configs", user / "configs")
    commands = readme_commands()
    assert len(commands) == 3 and all(README_DATASET in c and "--layout miccai2018" in c for c in commands)
    for command in commands:
        command = command.replace(README_DATASET, str(data)).replace("--layout miccai2018", f"--layout {layout}")
        args = shlex.split(command)
        assert args[:3] == ["python", "-m", "monai.bundle"]
        if layout != "miccai2018" and args[4] == "training":  # as written once; a shorter schedule for the others
            args += ["--max_epochs", "1", "--val_interval", "1", "--localizer_epochs", "2"]
        done = _run([sys.executable, *args[1:]], user)
        assert done.returncode == 0, (command, (done.stdout + done.stderr)[-3000:])
        assert tree_snapshot(data) == before, command
    assert (user / "plans" / "atria.json").is_file() and (user / "models" / "atria" / "model.ts").is_file()
    assert (user / "eval" / "atria" / "summary.json").is_file() and (user / "outputs" / "atria" / "report.csv").is_file()

    inference = [sys.executable, *shlex.split(commands[2].replace(README_DATASET, str(data)).replace(
        "--layout miccai2018", f"--layout {layout}"))[1:]]
    refused = {
        "inference into the dataset": inference[:-1] + [str(data / "predictions")],
        "synthesis over the dataset": [sys.executable, "-m", "bundle.cli.synthesize", "--out", str(data),
                                       "--overwrite", "True", "--profile", "tiny", "--n_patients", "1"],
        "a plan inside the dataset": [sys.executable, "-m", "bundle.cli.plan", "--root", str(data), "--layout", layout,
                                      "--out", str(data / "plan.json")],
    }
    if layout != "miccai2018":  # where an output goes does not depend on the layout: these once
        refused = {k: v for k, v in refused.items() if k == "synthesis over the dataset"}
    for what, cmd in refused.items():
        done = _run(cmd, user)
        log = done.stdout + done.stderr
        assert done.returncode != 0 and str(data) in log, (what, log[-2000:])
        assert "did not write" in log or "inside the input" in log, (what, log[-2000:])
    # masks made elsewhere (the dataset's own labels, as another tool lays them out), quantified with its images
    from bundle.data.layouts import load_case, read_dataset
    from bundle.data.predictions import write_prediction

    for record in read_dataset(data, layout):
        case = load_case(record)
        write_prediction(tmp_path / "manual", record["scan"], case.label > 0, case.label == 2, case.to_image(case.image))
    (tmp_path / "manual" / ".jasgan-bundle.json").unlink()  # as another tool leaves them: not the bundle's folder
    quantified = _run([sys.executable, "-m", "bundle.cli.quantify", "--predictions", str(tmp_path / "manual"),
                       "--images", str(data), "--layout", layout, "--out", "outputs/manual-quantified"], user)
    assert quantified.returncode == 0, (quantified.stdout + quantified.stderr)[-2000:]
    report = json.loads((user / "outputs" / "manual-quantified" / "report.json").read_text())
    assert report["n_scans"] == len(read_dataset(data, layout)) and report["n_failed"] == 0
    assert tree_snapshot(data) == before
