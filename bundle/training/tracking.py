"""Experiment tracking beyond TensorBoard: the exported models into the MLflow run of ``--tracking mlflow``.

MONAI's bundle tracking (``python -m monai.bundle run training ... --tracking mlflow``) adds an
``MLFlowHandler`` to ``train#handlers`` (the loss, the executed config) and to ``validate#handlers``
(validation metrics). :func:`tracked_handlers` makes the trainer's handler log every loss term of this
trainer's output, and :func:`log_models` adds the TorchScript exports, written after the trainer's run has
ended, to that run as artifacts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from bundle.training.trainer import logged_values

logger = logging.getLogger(__name__)


def mlflow_handlers(handlers: Iterable) -> list:
    """The ``monai.handlers.MLFlowHandler`` objects among ``handlers`` (none unless tracking is on)."""
    try:
        from monai.handlers import MLFlowHandler
    except ImportError:  # pragma: no cover - MONAI always has the class; mlflow itself is optional
        return []
    return [h for h in handlers if isinstance(h, MLFlowHandler)]


def tracked_handlers(handlers: list, output_dir: str | Path) -> list:
    """``handlers`` with each ``MLFlowHandler`` logging :func:`~bundle.training.trainer.logged_values` per iteration and
    the executed config that MONAI wrote into ``output_dir``.

    MONAI's default tracking settings read the loss with ``from_engine(['loss'], first=True)``, made for
    decollated outputs (a list of dicts); this trainer's output is one dict, for which that gives a 1-tuple
    MLflow cannot log. The loss terms and loss weights are logged under the names TensorBoard shows. And
    MONAI names the executed config by appending text to ``output_dir``'s config value, which only works when
    that value is an expression; for a plain path (``--output_dir runs/x``) the newest ``config_*.json`` of
    ``output_dir`` is logged instead of a file name that does not exist.
    """
    for handler in mlflow_handlers(handlers):
        handler.output_transform = logged_values
        missing = [a for a in handler.artifacts if a and not Path(a).exists()]
        if missing:
            configs = sorted(Path(output_dir).glob("config_*.json"), key=lambda p: p.stat().st_mtime_ns)
            handler.artifacts = tuple(a for a in handler.artifacts if a and a not in missing) + tuple(
                str(p) for p in configs[-1:])
    return handlers


def log_models(handlers: Iterable, paths: Sequence[str | Path], artifact_dir: str = "models") -> int:
    """Log the files ``paths`` into the MLflow run of the first ``MLFlowHandler`` in ``handlers``; returns how
    many were logged (0 when tracking is off)."""
    tracked = mlflow_handlers(handlers)
    if not tracked:
        return 0
    handler = tracked[0]
    experiment = handler.client.get_experiment_by_name(handler.experiment_name)
    runs = handler.client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                      max_results=1) if experiment is not None else []
    if not runs:
        logger.warning("no MLflow run of experiment %r to log %s into", handler.experiment_name, list(paths))
        return 0
    run_id = runs[0].info.run_id
    logged = 0
    for path in map(Path, paths):
        if path.is_file():
            handler.client.log_artifact(run_id, str(path), artifact_path=artifact_dir)
            logged += 1
    logger.info("logged %d exported model files into MLflow run %s", logged, run_id)
    return logged


class Stopwatch:
    """Logs the wall time of the run from construction (config start) to ``report()`` (finalize)."""

    def __init__(self, name: str = "training") -> None:
        self.name = name
        self.start = time.perf_counter()

    def report(self) -> float:
        seconds = time.perf_counter() - self.start
        logger.info("%s workflow wall time: %.1f s", self.name, seconds)
        return seconds
