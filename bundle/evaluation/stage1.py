"""Where stage 1 finds the LA: its ROI's recall of the LA on every whole field of view of one or more datasets.

Stage 1 is trained in minutes, stage 2 in a quarter of an hour: ``configs/stage1.yaml`` trains stage 1 alone and
checks it here, on every split of the training dataset and of any other datasets (new patients), so that a change
to the localiser is measured on a hundred scans rather than on the ten a validation split holds. Crops are skipped
(stage 1 skips them too). A scan is *missed* when its ROI holds less than :data:`MISSED_RECALL` of its LA.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bundle.data.phantom.dataset import scan_families
from bundle.inference.localizer import CROP, Localizer
from bundle.planning.planner import load_plan
from bundle.preprocessing.cache import load_split
from bundle.training.validation import locate_case

logger = logging.getLogger(__name__)

MISSED_RECALL = 0.95
"""A ROI holding less of the LA than this misses part of it (0: another structure)."""
SPLITS = ("train", "validation", "test")


def locate_dataset(locator: Localizer, dataset_dir: str | Path, plan: Mapping, layout: str,
                   cache_dir: str | Path | None = None) -> list[dict]:
    """Stage 1 on every whole scan of every split of the plan: one row per scan (split, scan, status, ROI recall,
    share of the scan, and the generator's families of a phantom scan)."""
    families = scan_families(dataset_dir)
    rows = []
    for split in SPLITS:
        for case in load_split(dict(plan), split, dataset_dir, layout, cache_dir, write_cache=False):
            found, recall, share = locate_case(locator, case)
            if found.status == CROP:
                continue
            scan = str(case.get("scan", ""))
            rows.append({"dataset": str(dataset_dir), "split": split, "scan": scan, "status": found.status,
                         "roi_recall": recall, "roi_share": share, **families.get(scan, {})})
    return rows


def summarize(rows: Sequence[Mapping]) -> dict:
    """Scans, missed scans (ROI recall under :data:`MISSED_RECALL`), of them at 0, the recall's minimum and mean, and
    the missed scans per family member (phantoms)."""
    missed = [r for r in rows if r["roi_recall"] < MISSED_RECALL]
    by_member = Counter(f"{k}={r[k]}" for r in missed for k in ("grid", "intensity", "anatomy") if k in r)
    recalls = [r["roi_recall"] for r in rows]
    return {"scans": len(rows), "missed": len(missed), "missed_entirely": sum(r["roi_recall"] == 0.0 for r in missed),
            "roi_recall_min": min(recalls, default=float("nan")),
            "roi_recall_mean": float(np.mean(recalls)) if recalls else float("nan"),
            "missed_by_family": dict(by_member.most_common()),
            "missed_scans": [f"{r['dataset']}:{r['split']}:{r['scan']} {r['status']} {r['roi_recall']:.2f}" for r in missed]}


def check(locator: Localizer, datasets: Sequence[Mapping]) -> dict:
    """Stage 1 on the whole scans of ``datasets`` (each ``dataset_dir``, ``plan`` or ``plan_file``, ``layout``,
    optional ``cache_dir``), logged per dataset and in all; returns {"datasets": {dir: summary}, "all": summary}. A
    dataset that cannot be read is logged as an error naming it (its summary: {"error": ...}) and the others go on."""
    locator.network.eval()
    rows, per_dataset = [], {}
    for i, d in enumerate(datasets):
        name = str(d.get("dataset_dir", f"dataset {i + 1}"))
        try:
            if "dataset_dir" not in d or not (d.get("plan") or d.get("plan_file")):
                raise ValueError("each dataset to check needs dataset_dir and plan_file")
            plan = d.get("plan") or load_plan(d["plan_file"])
            found = locate_dataset(locator, d["dataset_dir"], plan, d.get("layout", "datalist"), d.get("cache_dir"))
        except (OSError, ValueError) as err:  # DatasetError is a ValueError; the others are still checked
            logger.error("stage 1 not checked on %s: %s", name, err)
            per_dataset[name] = {"error": str(err)}
            continue
        per_dataset[name] = summary = summarize(found)
        logger.info("stage 1 on %s: %d whole scans, %d missed (%d entirely), ROI recall min %.3f, mean %.3f%s",
                    d["dataset_dir"], summary["scans"], summary["missed"], summary["missed_entirely"],
                    summary["roi_recall_min"], summary["roi_recall_mean"],
                    f": {', '.join(summary['missed_scans'])}" if summary["missed"] else "")
        rows += found
    total = summarize(rows)
    logger.info("stage 1 on %d whole scans of %d datasets: %d missed (%d entirely), by family %s", total["scans"],
                len(datasets), total["missed"], total["missed_entirely"], total["missed_by_family"] or "-")
    return {"datasets": per_dataset, "all": total}
