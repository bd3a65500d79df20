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
from bundle.data.phantom.dataset import ensure_phantoms, phantom_settings
from bundle.errors import DatasetError
from bundle.ownership import check_outside_inputs, claim_folder
from bundle.planning.planner import load_plan
from bundle.planning.rules import DEFAULT_PROFILE
from bundle.planning.run import plan_dataset
from bundle.preprocessing.cache import CACHE_KIND, cache_split
from bundle.training.distributed import main_process_first

PREPARE_COMMAND = "python -m monai.bundle run prepare --config_file configs/train.yaml"
"""What makes a missing plan (``training`` runs it first by itself)."""

OWN_DATASET_HINT = ("to train on this dataset, turn the phantoms off and give it its layout and a plan file of its own: "
                    "--phantom#enabled false --layout <miccai2018|lascarqs2022|datalist> --plan_file plans/<name>.json "
                    "(README: Training on your own dataset)")
"""How to train on a folder that is not the bundle's phantoms (ends the refusal to synthesize over it)."""

PREPARED_SPLITS = ("train", "validation")
"""Splits whose preprocessed scans ``prepare`` caches (the test split is cached when first evaluated)."""

RUN_FOLDER_KINDS = {"ckpt_dir": "models", "output_dir": "training logs"}
"""A training run's output folders (config keys) and the kind each is claimed as (:mod:`bundle.ownership`)."""

TRACKING_FILES = ("config_*.json", "mlruns.db", "mlruns")
"""What MONAI's experiment tracking (``--tracking mlflow``) writes into ``output_dir`` before the run starts."""

logger = logging.getLogger(__name__)


def prepare_data(
    dataset_dir: str | Path,
    plan_file: str | Path,
    layout: str = "datalist",
    phantom: object = None,
    planner_profile: str = DEFAULT_PROFILE,
) -> dict:
    """Return the plan for ``dataset_dir``, synthesizing the phantom data and planning when missing.

    ``phantom`` (a config block with ``enabled`` and the keys of
    :func:`bundle.data.phantom.dataset.synthesize_dataset`: ``n_patients``, ``profile``, ``seed``; see
    :func:`~bundle.data.phantom.dataset.phantom_settings` for the ways to turn it off) makes the built-in phantom
    cohort in ``dataset_dir`` when that folder is absent, empty or an unfinished phantom cohort. A folder holding
    anything else (a real dataset) is never written: with the phantoms on it is an error that says how to train on
    it; with them off it is read as ``layout``. The plan is written to ``plan_file`` (never inside a real dataset).
    """
    dataset_dir, plan_file = Path(dataset_dir), Path(plan_file)
    settings = phantom_settings(phantom)
    if settings is not None:
        ensure_phantoms(dataset_dir, layout, settings, hint=OWN_DATASET_HINT)
    if not dataset_dir.exists():
        raise DatasetError(dataset_dir, "dataset folder not found")
    check_outside_inputs(plan_file, [dataset_dir], "plan")
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
        planned_root = plan.get("dataset", {}).get("root", "?")
        raise DatasetError(
            plan_file,
            f"plan does not match the scans in {dataset_dir} (planned but absent: {missing}, present but "
            f"unplanned: {extra}); it is the plan of {planned_root}: give this dataset a plan file of its own "
            "(--plan_file plans/<name>.json, which prepare makes), or re-plan it with jasgan-plan",
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
            claim_folder(cache_dir, CACHE_KIND, inputs=[dataset_dir])
            for split in PREPARED_SPLITS:
                cache_split(plan, split, dataset_dir, layout, cache_dir)
        logger.info("prepared %s: plan %s, cache %s", dataset_dir, plan_file, cache_dir)
        return plan

    return main_process_first(work, lambda: prepared_plan(dataset_dir, plan_file, layout))


def claim_run_folders(dataset_dir: str | Path, **folders: str | Path) -> None:
    """Claim a training run's output folders (``ckpt_dir=...``, ``output_dir=...``: :data:`RUN_FOLDER_KINDS`) before
    it writes: each absent, empty or the bundle's, and none inside a dataset the bundle did not write.

    Raises:
        ForeignPathError: naming the folder, before any training.
    """
    for key, folder in folders.items():
        claim_folder(folder, RUN_FOLDER_KINDS.get(key, key), inputs=[dataset_dir],
                     expected=TRACKING_FILES if key == "output_dir" else ())


def phantom_records(dataset_dir: str | Path, layout: str = "datalist", phantom: object = None) -> list[dict]:
    """Every scan of a phantom cohort (e.g. an evaluation cohort no plan describes), synthesized first when the
    folder is absent, empty or an unfinished phantom cohort (:func:`bundle.data.phantom.dataset.ensure_phantoms`);
    ``phantom`` is a block as :func:`prepare_data`'s. A folder the bundle did not write is never replaced: with the
    phantoms on it is an error, with them off it is read.
    """
    dataset_dir = Path(dataset_dir)
    settings = phantom_settings(phantom)
    if settings is not None:
        ensure_phantoms(dataset_dir, layout, settings,
                        hint="to evaluate on this dataset, turn its phantoms off (e.g. --shifted_phantom#enabled false)")
    if not dataset_dir.exists():
        raise DatasetError(dataset_dir, "dataset folder not found")
    return read_dataset(dataset_dir, layout)
