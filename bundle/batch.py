"""A batch of scans, one row each: a failing scan is reported and the others go on; rows as CSV and strict JSON.

Shared by inference, quantification, baselines, evaluation and comparison.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from bundle.errors import DatasetError

logger = logging.getLogger(__name__)


BATCH_ERRORS = (DatasetError, ValueError, RuntimeError, OSError, MemoryError)
"""Errors that fail one scan of a batch but not the batch."""


def failed_row(item: Mapping, error: BaseException) -> dict:
    """The report row of an item (``scan``, ``image``) that failed with ``error``."""
    return {"scan": str(item.get("scan", "")), "image": str(item.get("image", "")), "status": "failed",
            "error": str(error) or type(error).__name__}


def run_batch(items: Iterable[Mapping], process: Callable[[Mapping], dict], what: str = "scan") -> list[dict]:
    """``process`` each item (a record with ``scan`` and ``image``); a failing item gives a ``failed`` row.

    ``process`` returns the row values of a successful item (``status`` defaults to ``ok``). Errors of
    :data:`BATCH_ERRORS` are logged with the scan and its file and the batch goes on.
    """
    rows = []
    items = list(items)
    for i, item in enumerate(items, 1):
        scan = str(item.get("scan", ""))
        try:
            row = {"scan": scan, "image": str(item.get("image", "")), "status": "ok", **process(item)}
            logger.info("%s %d/%d %s: done", what, i, len(items), scan)
        except BATCH_ERRORS as err:
            row = failed_row(item, err)
            logger.error("%s %d/%d %s failed and is skipped: %s", what, i, len(items), scan, row["error"])
        rows.append(row)
    return rows


def _csv_value(value: object) -> object:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return "" if value is None else value


def rows_to_csv(rows: Sequence[Mapping], fields: Sequence[str] | None = None) -> str:
    """CSV text of ``rows`` (``fields`` first, then any other keys in order of appearance); NaN -> empty."""
    columns = list(fields or [])
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    return buffer.getvalue()


def json_safe(value: object) -> object:
    """``value`` with NaN/inf floats as None and NumPy scalars as Python numbers (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
