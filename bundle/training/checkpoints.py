"""Checkpoints a killed training run can resume from: atomic writes, the best metric, ``--resume_from auto``.

- Every checkpoint is written to a temporary file in its folder and renamed over the target, so a kill
  during a write leaves the previous file intact (MONAI's ``CheckpointSaver`` writes in place).
- The training checkpoint (``checkpoint_epoch=N.pt``, ``checkpoint_final.pt``) holds the networks,
  optimisers, schedule, the trainer's epoch and iteration, and the validator's best metric, so a resumed run
  replaces ``model.pt`` only with a better epoch.
- :func:`resume_path` turns ``resume_from: auto`` into the newest complete checkpoint of ``ckpt_dir``.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointLoader, CheckpointSaver

from bundle.atomic import atomic_path
from bundle.errors import DatasetError

logger = logging.getLogger(__name__)

AUTO = "auto"
"""``resume_from`` value that picks the newest complete checkpoint of ``ckpt_dir`` (or starts fresh)."""

CHECKPOINT_GLOB = "checkpoint_*.pt"
"""Training checkpoints (:class:`EngineCheckpointSaver`'s files); ``model.pt`` is the best weights only."""


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` writing each file atomically (temporary file, then rename; mode 0644).

    Ignite's ``DiskSaver`` has the atomic mode; MONAI turns it off for the file permissions, which
    ignite 0.5 sets after the rename anyway.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler._atomic = True


class EngineCheckpointSaver(AtomicCheckpointSaver):
    """:class:`AtomicCheckpointSaver` that also saves the engine it is attached to (epoch, iteration).

    A config cannot list the trainer among the objects its own handler saves (a circular reference),
    so the engine is added to ``save_dict`` under ``trainer`` when the handler is attached.
    """

    def attach(self, engine: Engine) -> None:
        self.save_dict.setdefault("trainer", engine)
        super().attach(engine)


class EngineCheckpointLoader(CheckpointLoader):
    """``CheckpointLoader`` counterpart of :class:`EngineCheckpointSaver`: restores the engine's state too.

    A checkpoint written with another number of processes has another epoch length (each of N processes
    draws 1/N of an epoch): its completed epochs are carried over to this run's epoch length.
    """

    def attach(self, engine: Engine) -> None:
        self.load_dict.setdefault("trainer", engine)
        super().attach(engine)

    def __call__(self, engine: Engine) -> None:
        epoch_length = engine.state.epoch_length
        super().__call__(engine)
        saved = engine.state.epoch_length
        if epoch_length and saved and saved != epoch_length:
            epochs = engine.state.iteration // saved
            logger.info("checkpoint epochs had %d iterations, this run's have %d: continuing after epoch %d",
                        saved, epoch_length, epochs)
            engine.state.epoch_length = epoch_length
            engine.state.epoch = epochs
            engine.state.iteration = epochs * epoch_length


class BestMetric:
    """The best key metric of an evaluator and its epoch, as a checkpointable object (``state_dict``).

    Restoring it into the validator of a resumed run makes the run compare new epochs with the best one
    before the interruption, so :class:`BestModelSaver` keeps ``model.pt`` unless an epoch beats it.
    """

    def __init__(self, evaluator: Engine) -> None:
        self.evaluator = evaluator

    def state_dict(self) -> dict:
        state = self.evaluator.state
        return {"best_metric": float(state.best_metric), "best_metric_epoch": int(state.best_metric_epoch)}

    def load_state_dict(self, state: dict) -> None:
        self.evaluator.state.best_metric = float(state["best_metric"])
        self.evaluator.state.best_metric_epoch = int(state["best_metric_epoch"])
        logger.info("best %s so far: %.4f (epoch %d)", self.evaluator.state.key_metric_name or "metric",
                    self.evaluator.state.best_metric, self.evaluator.state.best_metric_epoch)


class BestModelSaver:
    """Evaluator handler: write ``network``'s state dict to ``path`` (atomically) when the epoch's key metric is
    the best so far, i.e. when the evaluator has just set ``best_metric_epoch`` to its current epoch.

    MONAI's workflow updates the best metric when an epoch completes, before the handlers run; the file is a
    plain state dict, as MONAI's ``CheckpointSaver`` writes a single object.
    """

    def __init__(self, network: torch.nn.Module, path: str | Path) -> None:
        self.network = network
        self.path = Path(path)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if engine.state.best_metric_epoch != engine.state.epoch:
            return
        with atomic_path(self.path, suffix=".pt") as tmp:
            torch.save(self.network.state_dict(), tmp)
        logger.info("saved %s (%s %.4f at epoch %d)", self.path, engine.state.key_metric_name,
                    engine.state.best_metric, engine.state.epoch)


def _trainer_state(path: Path) -> dict | None:
    """The ``trainer`` entry of a training checkpoint, or None when the file is not a complete checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, zipfile.BadZipFile, ValueError) as err:
        logger.warning("skipping %s: not a readable checkpoint (%s)", path, str(err).splitlines()[0] if str(err) else err)
        return None
    trainer = state.get("trainer") if isinstance(state, dict) else None
    if not isinstance(trainer, dict) or "iteration" not in trainer:
        logger.warning("skipping %s: no trainer state in it", path)
        return None
    return trainer


def resume_path(resume_from: str | Path | None, ckpt_dir: str | Path) -> Path | None:
    """The checkpoint a run continues from: None for a fresh run, ``resume_from`` itself, or for
    :data:`AUTO` the most recently written complete training checkpoint in ``ckpt_dir`` (None if there is none).

    Raises:
        DatasetError: an explicit ``resume_from`` file does not exist.
    """
    if resume_from is None:
        return None
    if str(resume_from) != AUTO:
        path = Path(resume_from)
        if not path.is_file():
            raise DatasetError(path, f"checkpoint to resume from not found (or use resume_from: {AUTO})")
        return path
    ckpt_dir = Path(ckpt_dir)
    candidates = sorted(ckpt_dir.glob(CHECKPOINT_GLOB), key=lambda p: (os.stat(p).st_mtime_ns, p.name), reverse=True)
    for path in candidates:
        trainer = _trainer_state(path)
        if trainer is not None:
            epochs = trainer["iteration"] // max(int(trainer.get("epoch_length") or 1), 1)
            logger.info("resume_from auto: continuing from %s (%d epochs done, iteration %d)", path, epochs,
                        trainer["iteration"])
            return path
    logger.info("resume_from auto: no complete checkpoint in %s, starting a fresh run", ckpt_dir)
    return None
