"""Checkpoints: atomic writes, the best metric across a resume, `resume_from: auto`, epoch lengths of other runs."""

from __future__ import annotations

import os
import time

import pytest
import torch
from ignite.engine import Engine, Events, State

from bundle.errors import DatasetError
from bundle.training.checkpoints import (
    BestMetric,
    BestModelSaver,
    EngineCheckpointLoader,
    EngineCheckpointSaver,
    resume_path,
)


def _engine(epoch_length: int = 3) -> Engine:
    engine = Engine(lambda e, b: None)
    engine.state = State(epoch_length=epoch_length, max_epochs=4)
    return engine


def _run_and_save(tmp_path, net: torch.nn.Module, epochs: int = 2) -> Engine:
    engine = Engine(lambda e, b: None)
    EngineCheckpointSaver(str(tmp_path), {"network": net}, save_interval=1, n_saved=1, save_final=True,
                          final_filename="checkpoint_final.pt").attach(engine)
    engine.run([0, 1, 2], max_epochs=epochs)
    return engine


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    net = torch.nn.Linear(2, 2)
    _run_and_save(tmp_path, net, epochs=1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"checkpoint_epoch=1.pt", "checkpoint_final.pt"}
    assert all(oct(p.stat().st_mode & 0o777) == "0o644" for p in tmp_path.iterdir())

    def torn_save(obj, f, *args, **kwargs):  # a kill in the middle of torch.save: some bytes, then nothing
        f.write(b"PK\x03\x04 torn")
        raise OSError("killed while writing")

    monkeypatch.setattr(torch, "save", torn_save)
    with torch.no_grad():
        net.weight.add_(1.0)
    with pytest.raises(OSError, match="killed while writing"):
        _run_and_save(tmp_path, net, epochs=1)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no torn file, no temporary left


def test_resume_path_none_explicit_and_missing(tmp_path):
    assert resume_path(None, tmp_path) is None
    assert resume_path("auto", tmp_path) is None  # nothing yet: a fresh run
    with pytest.raises(DatasetError, match="not found"):
        resume_path(tmp_path / "checkpoint_epoch=9.pt", tmp_path)
    net = torch.nn.Linear(2, 2)
    _run_and_save(tmp_path, net)
    assert resume_path(tmp_path / "checkpoint_epoch=2.pt", tmp_path) == tmp_path / "checkpoint_epoch=2.pt"


def test_resume_auto_takes_the_newest_complete_checkpoint(tmp_path):
    net = torch.nn.Linear(2, 2)
    old = tmp_path / "old"
    old.mkdir()
    _run_and_save(old, net, epochs=3)  # an earlier run: more epochs, but older
    time.sleep(0.01)
    _run_and_save(tmp_path, net, epochs=2)
    os.replace(old / "checkpoint_epoch=3.pt", tmp_path / "checkpoint_epoch=3.pt")
    past = time.time() - 3600
    os.utime(tmp_path / "checkpoint_epoch=3.pt", (past, past))
    newest = max(tmp_path.glob("checkpoint_*.pt"), key=lambda p: p.stat().st_mtime_ns)
    assert resume_path("auto", tmp_path) == newest and newest.name != "checkpoint_epoch=3.pt"

    (tmp_path / "checkpoint_zz.pt").write_bytes(b"not a checkpoint")  # newest, but unreadable: skipped
    torch.save({"network": net.state_dict()}, tmp_path / "checkpoint_weights_only.pt")  # no trainer state: skipped
    assert resume_path("auto", tmp_path) == newest


def test_loader_carries_completed_epochs_to_another_epoch_length(tmp_path):
    """A checkpoint of 2 processes (2 iterations per epoch) resumed by 1 process (4 per epoch)."""
    net = torch.nn.Linear(2, 2)
    engine = Engine(lambda e, b: None)
    EngineCheckpointSaver(str(tmp_path), {"network": net}, save_interval=1, n_saved=1).attach(engine)
    engine.run([0, 1], max_epochs=3)
    resumed = Engine(lambda e, b: None)
    EngineCheckpointLoader(str(tmp_path / "checkpoint_epoch=3.pt"), {"network": net}).attach(resumed)
    seen = []
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append((e.state.epoch, e.state.iteration)))
    resumed.run([0, 1, 2, 3], max_epochs=5)
    assert seen == [(4, 12), (5, 16)] and resumed.state.iteration == 20  # epochs 4 and 5, of 4 iterations


def test_best_metric_survives_a_resume_and_model_pt_follows_it(tmp_path):
    net = torch.nn.Linear(2, 2)
    evaluator = _engine()
    evaluator.state.key_metric_name = "val_mean_dice"
    saver = BestModelSaver(net, tmp_path / "model.pt")
    evaluator.state.epoch, evaluator.state.best_metric, evaluator.state.best_metric_epoch = 2, 0.8, 2
    saver(evaluator)  # epoch 2 is the best: written
    written = (tmp_path / "model.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], net.weight)
    state = BestMetric(evaluator).state_dict()
    assert state == {"best_metric": 0.8, "best_metric_epoch": 2}

    fresh = _engine()  # the validator of a resumed run: best restored, a worse epoch 3 does not replace model.pt
    fresh.state.key_metric_name = "val_mean_dice"
    BestMetric(fresh).load_state_dict(state)
    with torch.no_grad():
        net.weight.add_(1.0)
    fresh.state.epoch = 3  # MONAI leaves best_metric_epoch at 2 when epoch 3 scores lower
    BestModelSaver(net, tmp_path / "model.pt")(fresh)
    assert (tmp_path / "model.pt").read_bytes() == written
    fresh.state.best_metric, fresh.state.best_metric_epoch, fresh.state.epoch = 0.9, 4, 4
    BestModelSaver(net, tmp_path / "model.pt")(fresh)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"], net.weight)
