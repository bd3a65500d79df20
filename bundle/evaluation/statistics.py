"""Summaries of per-case metrics as the JAS-GAN paper reports them (Table I, Figures 9 and 10).

Rows are dictionaries, one per case (``scan``, ``ablation`` and metric values). Means and SDs leave
NaN values out (a metric undefined for a case, e.g. OSR of a scan without scar) and say how many
cases they used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

GROUPS = ("pre", "post", "all")
"""Table I's groups: pre-ablation scans, post-ablation scans, and all scans."""


def mean_sd(values: Iterable[float]) -> dict[str, float | int]:
    """Mean and sample SD (ddof=1) of the finite values, with their count (NaN mean when none)."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return {"mean": math.nan, "sd": math.nan, "n": 0}
    sd = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return {"mean": float(finite.mean()), "sd": sd, "n": int(finite.size)}


def group_members(rows: Sequence[Mapping], group: str, group_key: str = "ablation") -> list[Mapping]:
    """The rows of one of :data:`GROUPS`: those whose ``group_key`` is ``group``, or every row for ``all``."""
    return [r for r in rows if group == "all" or r.get(group_key) == group]


def summarize(rows: Sequence[Mapping], metrics: Sequence[str], group_key: str = "ablation") -> dict[str, dict]:
    """``{group: {metric: mean_sd}}`` for the ``pre``, ``post`` and ``all`` groups of ``rows``."""
    out = {}
    for group in GROUPS:
        members = group_members(rows, group, group_key)
        out[group] = {m: mean_sd(float(r[m]) for r in members if m in r) for m in metrics}
        out[group]["cases"] = len(members)
    return out


def pearson(reference: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Pearson r and its p-value, with the least-squares line ``measured = slope * reference + intercept``."""
    x, y = np.asarray(reference, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if x.shape != y.shape or x.size < 3:
        raise ValueError(f"Pearson correlation needs two equally long series of >= 3 values, got {x.size} and {y.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("a constant series has no correlation")
    fit = stats.linregress(x, y)  # r and its two-sided p-value with the line
    return {"r": float(fit.rvalue), "p": float(fit.pvalue), "slope": float(fit.slope), "intercept": float(fit.intercept),
            "n": int(x.size)}


def spearman(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Spearman rank correlation rho and its p-value of two series, NaN pairs left out; rho NaN under 3 pairs or
    for a constant series."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"rho": float("nan"), "p": float("nan"), "n": int(a.size)}
    rho, p = stats.spearmanr(a, b)
    return {"rho": float(rho), "p": float(p), "n": int(a.size)}


def bland_altman(reference: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Bland-Altman agreement: bias = mean(measured - reference), limits = bias +- 1.96 SD (ddof=1)."""
    x, y = np.asarray(reference, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"Bland-Altman needs two equally long series of >= 2 values, got {x.size} and {y.size}")
    diff = y - x
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return {"bias": bias, "sd": sd, "lower": bias - 1.96 * sd, "upper": bias + 1.96 * sd, "n": int(x.size)}
