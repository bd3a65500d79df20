"""Training at scale, as users run it: `prepare`, two processes under torchrun (gloo), SIGKILL and `--resume_from auto`,
and MLflow tracking; all on the tiny whole-field-of-view profile."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

TRAIN = "configs/train.yaml"
MULTI = "configs/multi_gpu_train.yaml"
STAGE2_LINE = re.compile(r"Epoch: (\d+)/(\d+), Iter: (\d+)/(\d+) -- adv_loss")
METRIC_LINE = re.compile(r"Epoch\[(\d+)\] Metrics -- .*val_mean_dice: ([0-9.]+)")


def _overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir", str(tmp_path / "phantom"), "--plan_file", str(tmp_path / "plans" / "tiny.json"),
        "--phantom#n_patients", "3", "--phantom#profile", "tinyfov", "--cache_dir", str(tmp_path / "cache"),
        "--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "runs"),
        "--val_interval", "1", "--localizer_epochs", "2", "--log_interval", "1", *extra,
    ]


def _bundle(run_id: str, config: str, tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config, *_overrides(tmp_path, *extra)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def _trainer_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["trainer"]


@pytest.mark.slow
def test_prepare_is_idempotent_and_reading_the_config_writes_nothing(tmp_path):
    from monai.bundle import ConfigParser, ConfigWorkflow

    from bundle.errors import DatasetError

    # unprepared: the config reads, its plan names the command that prepares it, and nothing is written
    overrides = dict(zip(*[iter(a.lstrip("-") for a in _overrides(tmp_path, "--max_epochs", "1"))] * 2))
    overrides = {k: (int(v) if v.isdigit() else v) for k, v in overrides.items()}
    parser = ConfigParser()
    parser.read_config(REPO / TRAIN)
    parser.update(overrides)
    parser.parse()
    with pytest.raises(RuntimeError) as raised:  # MONAI's config parser wraps what the expression raised
        parser.get_parsed_content("plan")
    assert isinstance(raised.value.__cause__, DatasetError)
    assert "monai.bundle run prepare" in str(raised.value.__cause__)
    assert not any(tmp_path.iterdir())

    first = _run(_bundle("prepare", TRAIN, tmp_path))
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    assert "synthesizing the phantom dataset" in first.stderr + first.stdout
    plan = json.loads((tmp_path / "plans" / "tiny.json").read_text())
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").rglob("*.npz"))
    assert cached == sorted(plan["split"]["train"] + plan["split"]["validation"])
    assert not (tmp_path / "models").exists() and not (tmp_path / "runs").exists()
    before = _tree(tmp_path)

    again = _run(_bundle("prepare", TRAIN, tmp_path))
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "synthesizing" not in again.stderr + again.stdout and "planning" not in again.stderr + again.stdout
    assert _tree(tmp_path) == before

    # prepared: reading the config and building its data, networks and the workflow's start writes nothing
    workflow = ConfigWorkflow(config_file=str(REPO / TRAIN), workflow_type="train", **overrides)
    workflow.initialize()
    for item in ("plan", "train#dataset", "validate#dataset", "localizer#items", "network", "discriminator",
                 "localizer#network"):
        assert workflow.parser.get_parsed_content(item) is not None
    assert workflow.parser.get_parsed_content("resume_checkpoint") is None  # nothing to resume from
    assert _tree(tmp_path) == before


@pytest.mark.slow
def test_two_processes_train_identical_models_and_only_rank_0_writes(tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks end with the same weights, buffers and loss weights;
    rank 0 alone prepares and writes; the result resumes in a single process."""
    dump = tmp_path / "dump.yaml"
    dump.write_text(  # each rank's weights when training ends (before rank 0's export loads model.pt into them)
        "dump: \"$torch.save({'network': @network.state_dict(), 'discriminator': @discriminator.state_dict(),"
        " 'loss': @loss_function.state_dict(), 'localizer': @localizer#network.state_dict()},"
        f" '{tmp_path}/rank' + str(distributed.rank()) + '.pt')\"\n"
        "training: ['$@prepare', '$@run', '$@dump', '$@export']\n"
    )
    config = f"['{TRAIN}','{MULTI}','{dump}']"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "monai.bundle", "run", "training", "--config_file", config,
           *_overrides(tmp_path, "--max_epochs", "2")]
    run = _run(cmd)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]
    assert "process 0 of 2 on cpu (gloo)" in log and "process 1 of 2 on cpu (gloo)" in log
    assert log.count("synthesizing the phantom dataset") == 1 and log.count("prepared ") == 1

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for part in ("network", "discriminator", "loss", "localizer"):
        a, b = ranks[0][part], ranks[1][part]
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{part} differs between ranks: {different[:5]}"
    assert not torch.equal(ranks[0]["loss"]["log_vars"], torch.zeros(2)), "the loss weights were not trained"

    models, runs = tmp_path / "models", tmp_path / "runs"
    assert sorted(p.name for p in models.iterdir()) == sorted([
        "checkpoint_epoch=2.pt", "checkpoint_final.pt", "discriminator.pt", "discriminator.ts", "localizer.pt",
        "localizer.ts", "model.pt", "model.ts", ".jasgan-bundle.json"])  # the marker: rank 0 claimed the folder
    events = list(runs.glob("events.out.tfevents.*"))
    assert len(events) == 3 and len({p.name.split(".")[-2] for p in events}) == 1, "TensorBoard from one process"
    saved = torch.load(models / "checkpoint_final.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in saved["network"]), "checkpoints hold the unwrapped networks"
    assert all(torch.equal(v, ranks[0]["network"][k]) for k, v in saved["network"].items())
    two_process_epoch = saved["trainer"]["epoch_length"]

    resumed = _run(_bundle("training", TRAIN, tmp_path, "--max_epochs", "3", "--resume_from", "auto"))
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert "resume_from auto: continuing from" in log and "checkpoint_final.pt" in log
    state = _trainer_state(models / "checkpoint_final.pt")
    assert state["epoch_length"] == 2 * two_process_epoch
    assert state["iteration"] == 3 * state["epoch_length"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_auto_finishes_every_epoch(tmp_path):
    """A run killed with SIGKILL in epoch 3 of 4 and restarted with `--resume_from auto` ends after 4 epochs with
    model.pt at the best validation metric of both runs and a verified TorchScript export."""
    models = tmp_path / "models"
    first = subprocess.Popen(_bundle("training", TRAIN, tmp_path, "--max_epochs", "4"), cwd=REPO, env=_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    killed_at = None
    for line in first.stdout:
        lines.append(line)
        match = STAGE2_LINE.search(line)
        if match and int(match[1]) == 3 and int(match[3]) == 2:  # epoch 3, iteration 2 of its epoch
            first.send_signal(signal.SIGKILL)
            killed_at = line
            break
    first.wait(timeout=60)
    log1 = "".join(lines)
    assert killed_at is not None, log1[-3000:]
    assert first.returncode == -signal.SIGKILL
    assert not (models / "checkpoint_final.pt").exists() and (models / "checkpoint_epoch=2.pt").is_file()

    second = _run(_bundle("training", TRAIN, tmp_path, "--max_epochs", "4", "--resume_from", "auto"))
    log2 = second.stdout + second.stderr
    assert second.returncode == 0, log2[-3000:]
    assert "checkpoint_epoch=2.pt (2 epochs done" in log2
    assert "resuming from iteration" in log2 and "localizer_loss" not in log2
    state = torch.load(models / "checkpoint_final.pt", map_location="cpu", weights_only=True)
    assert state["trainer"]["iteration"] == 4 * state["trainer"]["epoch_length"]

    # validation metrics of epochs 1-2 (first run) and 3-4 (resumed run): model.pt holds the best of all four
    metrics = {int(e): float(v) for e, v in METRIC_LINE.findall(log1)} | {int(e): float(v) for e, v in
                                                                        METRIC_LINE.findall(log2)}
    assert sorted(metrics) == [1, 2, 3, 4], metrics
    best_epoch = max(metrics, key=lambda e: (metrics[e], -e))
    assert state["best_metric"]["best_metric_epoch"] == best_epoch
    assert state["best_metric"]["best_metric"] == pytest.approx(metrics[best_epoch], abs=1e-4)
    assert (f"saved {models / 'model.pt'}" in log2) == (best_epoch > 2)
    scripted = torch.jit.load(str(models / "model.ts"))
    from bundle.networks import CascadeNet
    from bundle.planning.planner import decision_values, load_plan

    values = decision_values(load_plan(tmp_path / "plans" / "tiny.json"))
    net = CascadeNet(1, values["network"]["gl_widths"], values["network"]["gs_width"],
                     lstm_channels=values["network"].get("lstm_channels", 32)).eval()
    net.load_state_dict(torch.load(models / "model.pt", weights_only=True))
    x = torch.randn(1, 1, *values["patch_size"])
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), atol=1e-5)


@pytest.mark.slow
def test_mlflow_tracking_logs_config_losses_metrics_and_models(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = _run(_bundle("training", TRAIN, tmp_path, "--max_epochs", "1", "--tracking", "mlflow"))
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    uri = "sqlite:///" + str(tmp_path / "runs" / "mlruns.db")
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("monai_experiment")
    (tracked,) = client.search_runs([experiment.experiment_id])
    assert {"loss", "seg_loss", "adv_loss", "d_loss", "lambda1", "val_mean_dice", "val_dice_la", "val_dice_scar"} <= set(tracked.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert any(a.startswith("config_") and a.endswith(".json") for a in artifacts), artifacts
    assert {a.path for a in client.list_artifacts(tracked.info.run_id, "models")} == {
        "models/model.ts", "models/localizer.ts", "models/discriminator.ts"}


def test_the_multi_gpu_overlay_outside_torchrun_says_how_to_launch_it(monkeypatch):
    from bundle.training.distributed import init_process_group

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(RuntimeError, match="runs under torchrun .*--nproc_per_node=N"):
        init_process_group("cpu")
