"""Validation during training: per-channel metric outputs and stage 1's ROI recall on the validation scans.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from monai.handlers import from_engine

from bundle.inference.localizer import Localizer

logger = logging.getLogger(__name__)


def channel_output(channel: int) -> Callable:
    """Output transform giving metrics one channel (0 = LA, 1 = scar) of decollated ``pred``/``label``."""

    def transform(output: list[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        preds, labels = from_engine(["pred", "label"])(output)
        return [p[channel : channel + 1] for p in preds], [y[channel : channel + 1] for y in labels]

    return transform


ROI_RECALL_WARNING = 0.99
"""A validation scan whose ROI holds less of its LA than this is reported with a warning."""


def locate_case(locator: Localizer, case: Mapping) -> tuple:
    """Stage 1 on one preprocessed case: its answer, the share of the LA its ROI holds (no ROI: 0, or 1 without LA)
    and the share of the scan the ROI is."""
    label = np.asarray(case["label"]) > 0
    loc = locator.locate(case["image"], [float(s) for s in case["spacing"]])
    recall = loc.roi.recall(label) if loc.roi is not None else (1.0 if not label.any() else 0.0)
    share = loc.roi.fraction_of(label.shape) if loc.roi is not None else 0.0
    return loc, float(recall), float(share)


def log_rois(locator: Localizer, cases: Sequence[Mapping]) -> list[dict]:
    """Stage 1 on preprocessed validation ``cases``: per scan, how much of its LA the ROI holds (recall) and how
    much of the scan it is; logged (a warning under :data:`ROI_RECALL_WARNING`) and returned."""
    rows = []
    for case in cases:
        loc, recall, share = locate_case(locator, case)
        rows.append({"scan": case.get("scan", ""), "status": loc.status, "roi_recall": recall, "roi_share": share})
        log = logger.warning if recall < ROI_RECALL_WARNING else logger.info
        log("stage 1 on %s: %s; ROI recall %.4f, %.1f %% of the scan", case.get("scan", ""), loc.status, recall,
            100 * share)
    if rows:
        logger.info("stage 1 on %d validation scans: ROI recall min %.4f, mean %.4f; ROI %.1f %% of a scan on average",
                    len(rows), min(r["roi_recall"] for r in rows), float(np.mean([r["roi_recall"] for r in rows])),
                    100 * float(np.mean([r["roi_share"] for r in rows])))
    return rows
