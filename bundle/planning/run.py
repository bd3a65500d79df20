"""Plan a dataset on disk: read its layout, fingerprint every scan, decide, write the plan."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from bundle.data.case import Case
from bundle.data.layouts import label_protocol, load_case, read_dataset
from bundle.errors import DatasetError
from bundle.planning import rules
from bundle.ownership import check_outside_inputs, check_replaceable_file
from bundle.parallel import default_workers, ordered_map
from bundle.planning.planner import is_plan_file, make_plan, save_plan

logger = logging.getLogger(__name__)


def portable_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (plans stay portable)."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return os.fspath(path)


def plan_dataset(
    root: str | Path,
    layout: str = "datalist",
    name: str | None = None,
    out: str | Path | None = None,
    csv: str | None = None,
    seed: int = rules.SPLIT_SEED,
    n_folds: int = rules.N_FOLDS,
    test_fraction: float = rules.TEST_FRACTION,
    val_fraction: float = rules.VAL_FRACTION,
    profile: str = rules.DEFAULT_PROFILE,
    scar_labels: str | None = None,
    workers: int | None = None,
) -> dict:
    """Fingerprint the dataset at ``root`` and write ``plans/<name>.json`` (or ``out``: a new file or a plan, never
    inside ``root``; checked before any scan is read).

    A scan that cannot be loaded (unreadable file, inconsistent labels, ...) is reported,
    listed under ``excluded`` in the plan with its reason, and left out; the others are planned.
    ``scar_labels``: the label set (``manual``, ``toolkit``, ``none``; None: the layout's default), recorded in the
    plan's ``label_protocol`` and used by everything that reads the plan's scans. ``workers`` processes read the
    scans (default: one per core for 8 scans or more, :func:`bundle.parallel.default_workers`); the plan does not
    depend on it.
    """
    name = name or Path(root).name
    out = Path(out) if out is not None else Path("plans") / f"{name}.json"
    check_outside_inputs(out, [root], "plan")  # before reading a scan: the plan never goes into the dataset
    check_replaceable_file(out, is_plan_file, "plan")
    protocol = label_protocol(layout, scar_labels)
    records = [{**r, "scar_labels": protocol["scar_labels"]} for r in read_dataset(root, layout, csv=csv)]
    excluded: list[dict] = []

    def cases() -> Iterator[Case]:
        loaded = ordered_map(load_case, records, default_workers(len(records), workers))
        for i, (record, case, err) in enumerate(loaded, 1):
            if isinstance(err, DatasetError):
                logger.error("skipping scan %s: %s", record.get("scan"), err)
                excluded.append({"scan": record.get("scan"), "error": str(err)})
                continue
            if err is not None:
                raise err
            logger.info("fingerprint %d/%d %s", i, len(records), record.get("scan"))
            yield case

    dataset = {"root": portable_path(root), "layout": layout}
    if csv:
        dataset["csv"] = portable_path(csv)
    plan = make_plan(
        cases(), name=name, dataset=dataset, label_protocol=protocol, seed=seed,
        n_folds=n_folds, test_fraction=test_fraction, val_fraction=val_fraction, profile=profile,
    )
    plan["excluded"] = excluded  # no timing in the plan: planning the same data again gives the same file
    save_plan(plan, out)
    return plan
