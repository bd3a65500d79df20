"""The command-line tools: entry points, the same ending on bad input, jasgan-synthesize and jasgan-plan end to end,
and plan_dataset on a damaged dataset."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from conftest import REPO

from bundle.data.phantom.dataset import MANIFEST, synthesize_dataset
from bundle.data.phantom.generate import cohort
from bundle.planning.planner import PLAN_KEYS, load_plan, plan_decisions
from bundle.planning.run import plan_dataset

N_PATIENTS = 3
SCANS = sorted(s.scan for s in cohort(N_PATIENTS))
PATIENT_OF = {s.scan: s.patient for s in cohort(N_PATIENTS)}


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # from the bundle root, nothing else on the path
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _check_split(split: dict, scans: list[str], patient_of: dict[str, str]) -> None:
    parts = [split["train"], split["validation"], split["test"]]
    assert sorted(s for part in parts for s in part) == sorted(scans)  # each scan in exactly one split
    owner = {}
    for name, part in zip(("train", "validation", "test"), parts):
        for scan in part:
            assert owner.setdefault(patient_of[scan], name) == name, f"patient of {scan} in two splits"
    for fold in split["folds"]:
        assert not set(fold["train"]) & set(fold["validation"])
        assert sorted(fold["train"] + fold["validation"]) == sorted(split["train"] + split["validation"])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny datalist phantom dataset (5 scans of 3 patients), shared read-only."""
    root = tmp_path_factory.mktemp("scripts") / "phantom"
    synthesize_dataset(root, n_patients=N_PATIENTS, profile="tiny", layout="datalist")
    return root


def test_synthesize_and_plan_scripts(tmp_path):
    data, plan_path = tmp_path / "data", tmp_path / "plans" / "tiny.json"
    done = _run("-m", "bundle.cli.synthesize", "--out", str(data), "--n_patients", str(N_PATIENTS), "--profile", "tiny")
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(SCANS)} scans" in done.stdout
    manifest = json.loads((data / MANIFEST).read_text())
    assert manifest["profile"] == "tiny" and manifest["layout"] == "datalist" and sorted(manifest["scans"]) == SCANS
    assert len(list((data / "imagesTr").iterdir())) == len(SCANS)

    again = _run("-m", "bundle.cli.synthesize", "--out", str(data), "--n_patients", "1", "--profile", "tiny")
    assert again.returncode == 2 and again.stderr.startswith(f"error: {data}: holds a phantom dataset already")
    assert json.loads((data / MANIFEST).read_text()) == manifest  # left untouched

    done = _run(
        "-m", "bundle.cli.plan", "--root", str(data), "--layout", "datalist", "--name", "tiny", "--out", str(plan_path)
    )
    assert done.returncode == 0, done.stderr
    assert f"plan tiny: {len(SCANS)} scans, 0 excluded" in done.stdout
    plan = json.loads(plan_path.read_text())
    assert load_plan(plan_path) == plan
    for key in ("name", "dataset", "decisions", "split", "fingerprint", *PLAN_KEYS):
        assert key in plan
    assert plan["name"] == "tiny" and plan["excluded"] == []
    # tmp_path lies outside the working directory: the root is recorded as given
    assert plan["dataset"] == {"root": str(data), "layout": "datalist"}
    cases = plan["fingerprint"]["cases"]
    assert sorted(c["scan"] for c in cases) == SCANS
    for case in cases:
        assert case["patient"] == PATIENT_OF[case["scan"]]
        assert case["ablation"] == case["scan"].split("_")[1]
        assert case["shape"] == [64, 64, 12] and case["spacing"] == [2.0, 2.0, 4.0]
        assert case["la_voxels"] > 1000
    _check_split(plan["split"], SCANS, PATIENT_OF)
    assert plan["split"]["n_groups"] == N_PATIENTS
    assert plan["decisions"]["target_spacing"]["value"][:2] == [2.0, 2.0]

    # no timing in the plan: planning the same data again gives the same file
    again = _run("-m", "bundle.cli.plan", "--root", str(data), "--layout", "datalist", "--name", "tiny", "--out",
                 str(tmp_path / "again.json"))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.json").read_bytes() == plan_path.read_bytes()
    # another profile from the stored fingerprint, without the scans: same split, that profile's decisions
    shutil.rmtree(data)
    paper = _run("-m", "bundle.cli.plan", "--from_plan", str(plan_path), "--profile", "paper", "--name", "tiny-paper")
    assert paper.returncode == 0, paper.stderr
    replanned = load_plan(plan_path.parent / "tiny-paper.json")
    assert replanned["split"] == plan["split"] and replanned["fingerprint"] == plan["fingerprint"]
    assert replanned["profile"] == "paper" and replanned["name"] == "tiny-paper"
    assert replanned["decisions"] == plan_decisions(plan["fingerprint"], "paper")


def test_plan_defaults_relative_root_and_plans_folder(dataset, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(dataset, work / "phantom")
    monkeypatch.chdir(work)
    plan = plan_dataset(work / "phantom", "datalist")
    assert plan["name"] == "phantom"
    assert plan["dataset"]["root"] == "phantom"  # inside the working directory: relative, portable
    assert load_plan(work / "plans" / "phantom.json")["split"] == plan["split"]


def test_plan_excludes_a_corrupt_scan(dataset, tmp_path):
    root = tmp_path / "damaged"
    shutil.copytree(dataset, root)
    bad = root / "imagesTr" / "P002_pre.nii.gz"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "plan.json"
    plan = plan_dataset(root, "datalist", out=out)
    assert out.is_file() and load_plan(out)["excluded"] == plan["excluded"]
    assert len(plan["excluded"]) == 1
    excluded = plan["excluded"][0]
    assert excluded["scan"] == "P002_pre"
    assert "P002_pre.nii.gz" in excluded["error"] and str(bad) in excluded["error"]
    good = [s for s in SCANS if s != "P002_pre"]
    assert sorted(c["scan"] for c in plan["fingerprint"]["cases"]) == good
    _check_split(plan["split"], good, PATIENT_OF)


def test_plan_is_deterministic(dataset, tmp_path):
    first = plan_dataset(dataset, "datalist", out=tmp_path / "a.json")
    second = plan_dataset(dataset, "datalist", out=tmp_path / "b.json")
    assert first["split"] == second["split"]
    assert first["decisions"] == second["decisions"]
    assert first["fingerprint"] == second["fingerprint"]
    other = plan_dataset(dataset, "datalist", out=tmp_path / "c.json", seed=1)
    assert other["decisions"] == first["decisions"]  # the seed only shuffles the split
    _check_split(other["split"], SCANS, PATIENT_OF)


ENTRY_POINTS = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


def test_every_tool_has_an_entry_point_and_each_resolves():
    modules = sorted(p.stem for p in (REPO / "bundle" / "cli").glob("*.py") if p.stem != "__init__")
    assert sorted(target.split(":")[0].rsplit(".", 1)[1] for target in ENTRY_POINTS.values()) == modules
    for name, target in ENTRY_POINTS.items():
        module, function = target.split(":")
        assert name == "jasgan-" + module.rsplit(".", 1)[1].replace("_", "-")
        assert callable(getattr(importlib.import_module(module), function))


def test_installed_entry_points_run():
    """``pip install -e .`` (in requirements-dev.txt) puts the tools beside the interpreter."""
    bin_dir = Path(sys.executable).parent
    missing = [n for n in ENTRY_POINTS if not (bin_dir / n).exists() and shutil.which(n) is None]
    assert not missing, f"not installed: {missing}; run pip install -c constraints.txt -e ."
    tool = shutil.which("jasgan-benchmark", path=str(bin_dir)) or shutil.which("jasgan-benchmark")
    done = subprocess.run([tool, "dicom", "--size", "[32,32]", "--slices", "3", "--repeats", "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["slices"] == 3


@pytest.mark.parametrize(
    ("module", "argv", "problem"),
    [
        ("synthesize", ["--profile", "nope", "--out", "{tmp}/x"], "unknown phantom profile"),
        ("synthesize", ["--families", "dark", "--out", "{tmp}/x"], "--families must be a JSON object"),
        ("synthesize", ["--families", '{{"intensity": ["psir"]}}', "--out", "{tmp}/x"], "unknown or no members"),
        ("plan", ["--root", "{tmp}/none"], "dataset folder not found"),
        ("plan", ["--from_plan", "{tmp}/none.json"], "plan file not found"),
        ("quantify", ["--predictions", "{tmp}/none"], "prediction folder not found"),
        ("qc_correlation", ["--eval_dirs", "{tmp}/none"], "not found"),
        ("baselines", ["--dataset", "{tmp}/none", "--plan", "{tmp}/none.json"], "plan file not found"),
        ("compare", ["--methods", "not json"], "--methods must be a JSON object"),
        ("benchmark", ["training", "--preset", "nope"], "unknown preset"),
        ("benchmark", ["inference", "--nope", "3"], "unknown option(s) --nope; the options are --preset"),
    ],
)
def test_bad_input_ends_every_tool_the_same_way(module, argv, problem, tmp_path, monkeypatch, capsys):
    """``error: <what>`` on stderr and exit status 2, no traceback, whichever tool."""
    from bundle.cli import BAD_INPUT_STATUS

    cli = importlib.import_module(f"bundle.cli.{module}").cli
    monkeypatch.setattr(sys, "argv", [f"jasgan-{module}", *(a.format(tmp=tmp_path) for a in argv)])
    with pytest.raises(SystemExit) as stopped:
        cli()
    err = capsys.readouterr().err
    assert stopped.value.code == BAD_INPUT_STATUS, err
    assert err.startswith("error: ") and problem in err and "Traceback" not in err


@pytest.mark.parametrize("command", ["training", "inference"])
def test_benchmark_help_lists_the_options_instead_of_failing(command, monkeypatch, capsys):
    """``--help`` of a benchmark that takes size overrides: its options, not a TypeError about a ``help`` argument."""
    from bundle.cli import benchmark

    monkeypatch.setattr(sys, "argv", ["jasgan-benchmark", command, "--help"])
    benchmark.cli()
    out = capsys.readouterr().out
    assert "options: --preset, --log_level, " in out and "--device" in out and "--warmup" in out
