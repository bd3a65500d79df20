"""The ``prepare`` step of training: data, plan and preprocessing cache, made once, before any training process.

On a fresh clone the built-in phantom dataset is missing (data are never committed) while its
plan is committed; ``prepare_data`` regenerates the data from the seed the plan was made with
and checks that the scans match the plan, so a plan never silently describes other data.
:func:`prepare` adds the preprocessing cache of the training and validation splits, on rank 0 only
under ``torchrun``. Reading a config never writes: the config's ``plan`` is :func:`prepared_plan`, which
only reads and checks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bundle.data.layouts import read_dataset
from bundle.data.phantom.dataset import is_complete, synthesize_dataset
from bundle.errors import DatasetError
from bundle.planning.planner import load_plan
from bundle.planning.rules import DEFAULT_PROFILE
from bundle.planning.run import plan_dataset
from bundle.preprocessing.cache import cache_split
from bundle.training.distributed import main_process_first

PREPARE_COMMAND = "python -m monai.bundle run prepare --config_file configs/train.yaml"
"""What makes a missing plan (``training`` runs it first by itself)."""

PREPARED_SPLITS = ("train", "validation")
"""Splits whose preprocessed scans ``prepare`` caches (the test split is cached when first evaluated)."""

logger = logging.getLogger(__name__)


def prepare_data(
    dataset_dir: str | Path,
    plan_file: str | Path,
    layout: str = "datalist",
    phantom: dict | None = None,
    planner_profile: str = DEFAULT_PROFILE,
) -> dict:
    """Return the plan for ``dataset_dir``, synthesizing the phantom data and planning when missing.

    ``phantom`` (keys of :func:`bundle.data.phantom.dataset.synthesize_dataset`: ``n_patients``,
    ``profile``, ``seed``) marks the dataset as the built-in phantom cohort; a real dataset that
    is missing is an error naming the folder.
    """
    dataset_dir, plan_file = Path(dataset_dir), Path(plan_file)
    if phantom is not None and not is_complete(dataset_dir):
        logger.info("synthesizing the phantom dataset into %s", dataset_dir)
        synthesize_dataset(dataset_dir, layout=layout, overwrite=True, **phantom)
    if not dataset_dir.exists():
        raise DatasetError(dataset_dir, "dataset folder not found")
    if not plan_file.is_file():
        logger.info("planning %s into %s", dataset_dir, plan_file)
        return plan_dataset(dataset_dir, layout, name=plan_file.stem, out=plan_file, profile=planner_profile)
    return prepared_plan(dataset_dir, plan_file, layout)


def prepared_plan(dataset_dir: str | Path, plan_file: str | Path, layout: str = "datalist") -> dict:
    """The plan of a prepared dataset, checked against the scans on disk; reads only.

    Raises:
        DatasetError: the dataset or plan is missing (naming the command that prepares them), or the plan
            describes other scans than those in ``dataset_dir``.
    """
    dataset_dir, plan_file = Path(dataset_dir), Path(plan_file)
    if not dataset_dir.exists():
        raise DatasetError(dataset_dir, f"dataset folder not found (for the built-in phantoms: {PREPARE_COMMAND})")
    if not plan_file.is_file():
        raise DatasetError(plan_file, f"plan not found; make it with: {PREPARE_COMMAND} (or jasgan-plan)")
    plan = load_plan(plan_file)
    planned = {c["scan"] for c in plan["fingerprint"]["cases"]} | {e["scan"] for e in plan.get("excluded", [])}
    on_disk = {r["scan"] for r in read_dataset(dataset_dir, layout)}
    if planned != on_disk:
        missing, extra = sorted(planned - on_disk)[:5], sorted(on_disk - planned)[:5]
        raise DatasetError(
            plan_file,
            f"plan does not match the scans in {dataset_dir} (planned but absent: {missing}, present but "
            f"unplanned: {extra}); re-run jasgan-plan or delete the plan",
        )
    return plan


def prepare(
    dataset_dir: str | Path,
    plan_file: str | Path,
    layout: str = "datalist",
    phantom: dict | None = None,
    planner_profile: str = DEFAULT_PROFILE,
    cache_dir: str | Path | None = None,
) -> dict:
    """The ``prepare`` run id: :func:`prepare_data`, then the preprocessing cache of :data:`PREPARED_SPLITS`.

    Idempotent: what exists is checked and kept. Under ``torchrun`` rank 0 prepares while the other ranks
    wait at a barrier, then read the plan it made.
    """

    def work() -> dict:
        plan = prepare_data(dataset_dir, plan_file, layout, phantom, planner_profile)
        if cache_dir is not None:
            for split in PREPARED_SPLITS:
                cache_split(plan, split, dataset_dir, layout, cache_dir)
        logger.info("prepared %s: plan %s, cache %s", dataset_dir, plan_file, cache_dir)
        return plan

    return main_process_first(work, lambda: prepared_plan(dataset_dir, plan_file, layout))


def phantom_records(dataset_dir: str | Path, layout: str = "datalist", phantom: dict | None = None) -> list[dict]:
    """Every scan of a phantom cohort (e.g. an evaluation cohort no plan describes), synthesized first when the
    folder holds no finished cohort; ``phantom`` has the keys of
    :func:`bundle.data.phantom.dataset.synthesize_dataset` (``n_patients``, ``profile``, ``seed``)."""
    dataset_dir = Path(dataset_dir)
    if phantom is not None and not is_complete(dataset_dir):
        logger.info("synthesizing the phantom cohort %s into %s", phantom, dataset_dir)
        synthesize_dataset(dataset_dir, layout=layout, overwrite=True, **phantom)
    if not dataset_dir.exists():
        raise DatasetError(dataset_dir, "dataset folder not found")
    return read_dataset(dataset_dir, layout)
