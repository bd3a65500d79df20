"""Make sure a config's dataset and plan exist before training: synthesize and plan on demand.

On a fresh clone the built-in phantom dataset is missing (data are never committed) while its
plan is committed; ``prepare_data`` regenerates the data from the seed the plan was made with
and checks that the scans match the plan, so a plan never silently describes other data.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bundle.errors import DatasetError
from bundle.layouts import read_dataset
from bundle.phantom.dataset import is_complete, synthesize_dataset
from bundle.planning.planner import load_plan
from bundle.planning.run import plan_dataset

logger = logging.getLogger(__name__)


def prepare_data(
    dataset_dir: str | Path,
    plan_file: str | Path,
    layout: str = "datalist",
    phantom: dict | None = None,
    planner_profile: str = "paper",
) -> dict:
    """Return the plan for ``dataset_dir``, synthesizing the phantom data and planning when missing.

    ``phantom`` (keys of :func:`bundle.phantom.dataset.synthesize_dataset`: ``n_patients``,
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
    plan = load_plan(plan_file)
    planned = {c["scan"] for c in plan["fingerprint"]["cases"]} | {e["scan"] for e in plan.get("excluded", [])}
    on_disk = {r["scan"] for r in read_dataset(dataset_dir, layout)}
    if planned != on_disk:
        missing, extra = sorted(planned - on_disk)[:5], sorted(on_disk - planned)[:5]
        raise DatasetError(
            plan_file,
            f"plan does not match the scans in {dataset_dir} (planned but absent: {missing}, present but "
            f"unplanned: {extra}); re-run scripts/plan.py or delete the plan",
        )
    return plan


def phantom_records(dataset_dir: str | Path, layout: str = "datalist", phantom: dict | None = None) -> list[dict]:
    """Every scan of a phantom cohort (e.g. an evaluation cohort no plan describes), synthesized first when the
    folder holds no finished cohort; ``phantom`` has the keys of
    :func:`bundle.phantom.dataset.synthesize_dataset` (``n_patients``, ``profile``, ``seed``)."""
    dataset_dir = Path(dataset_dir)
    if phantom is not None and not is_complete(dataset_dir):
        logger.info("synthesizing the phantom cohort %s into %s", phantom, dataset_dir)
        synthesize_dataset(dataset_dir, layout=layout, overwrite=True, **phantom)
    if not dataset_dir.exists():
        raise DatasetError(dataset_dir, "dataset folder not found")
    return read_dataset(dataset_dir, layout)
