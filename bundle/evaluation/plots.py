"""Evaluation figures as PNG: scar agreement (JAS-GAN Figures 9, 10) and contour overlays (Figures 3-5)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np

from bundle.atomic import atomic_path
from bundle.evaluation.statistics import mean_sd

DPI = 120
TRUTH_COLOURS = {"LA": "#2ca02c", "scar": "#ffdd00"}
PRED_COLOURS = {"LA": "#d62728", "scar": "#ff00ff"}
N_OVERLAY_SLICES = 3


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


GROUP_COLOURS = {"pre": "#ff7f0e", "post": "#1f77b4"}
OTHER_COLOUR = "#7f7f7f"


def _r_text(stats: Mapping, group: str) -> str:
    fit = (stats.get(group) or {}).get("pearson")
    return f"r = {fit['r']:.3f}" if fit else "r n/a"


def agreement_figure(rows: Sequence[Mapping], key: str, stats: Mapping, title: str, unit: str,
                     path: str | Path, group_key: str = "ablation") -> Path:
    """Scatter of prediction against ground truth with the regression line, and the Bland-Altman plot;
    pre- and post-ablation scans in their own colours with their own r (JAS-GAN Figures 9 and 10)."""
    x = np.asarray([float(r[f"gt_{key}"]) for r in rows])
    y = np.asarray([float(r[f"pred_{key}"]) for r in rows])
    groups = np.asarray([str(r.get(group_key, "")) for r in rows])
    fig, (ax_scatter, ax_ba) = plt.subplots(1, 2, figsize=(10, 4.2))
    mean, diff = (x + y) / 2, y - x
    for group in sorted(set(groups)):
        sel = groups == group
        label = f"{group} ({sel.sum()}, {_r_text(stats, group)})" if group in GROUP_COLOURS else f"{group} ({sel.sum()})"
        colour = GROUP_COLOURS.get(group, OTHER_COLOUR)
        ax_scatter.scatter(x[sel], y[sel], s=20, color=colour, label=label)
        ax_ba.scatter(mean[sel], diff[sel], s=20, color=colour)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax_scatter.plot([lo, hi], [lo, hi], "k:", lw=1, label="identity")
    fit = stats.get("all", {}).get("pearson")
    if fit:
        ax_scatter.plot([lo, hi], [fit["slope"] * lo + fit["intercept"], fit["slope"] * hi + fit["intercept"]],
                        color="#d62728", lw=1.5,
                        label=f"all: y = {fit['slope']:.2f} x {'-' if fit['intercept'] < 0 else '+'} "
                              f"{abs(fit['intercept']):.2f}, r = {fit['r']:.3f}")
    ax_scatter.set(xlabel=f"ground truth ({unit})", ylabel=f"prediction ({unit})", title=f"{title}: correlation")
    ax_scatter.legend(fontsize=8, loc="upper left")
    ba = stats.get("all", {}).get("bland_altman")
    if ba:
        for value, style, text in ((ba["bias"], "-", "bias"), (ba["upper"], "--", "+1.96 SD"),
                                   (ba["lower"], "--", "-1.96 SD")):
            ax_ba.axhline(value, color="#d62728", ls=style, lw=1)
            ax_ba.annotate(f"{text} {value:.2f}", (1.0, value), xycoords=("axes fraction", "data"), fontsize=8,
                           ha="right", va="bottom")
    ax_ba.set(xlabel=f"mean of prediction and ground truth ({unit})", ylabel=f"prediction - ground truth ({unit})",
              title=f"{title}: Bland-Altman (all scans)")
    return _save(fig, Path(path))


def agreement_figures(rows: Sequence[Mapping], agreement: Mapping[str, Mapping], out_dir: str | Path,
                      quantities: Mapping[str, tuple[str, str]]) -> list[Path]:
    """One figure ``<name>.png`` per quantity ``{name: (row key, unit)}``, from the rows' ``gt_``/``pred_`` values."""
    return [agreement_figure(rows, key, agreement.get(name, {}), name.replace("_", " "), unit,
                             Path(out_dir) / f"{name}.png") for name, (key, unit) in quantities.items()]


def overlay_slices(label: np.ndarray, n: int = N_OVERLAY_SLICES) -> list[int]:
    """``n`` axial slices spread over the LA of ``label`` (z, y, x): the middle and quartiles of its extent."""
    z = np.flatnonzero(np.asarray(label).reshape(label.shape[0], -1).any(axis=1))
    if z.size == 0:
        z = np.arange(label.shape[0])
    picks = np.quantile(z, np.linspace(0.25, 0.75, n)) if n > 1 else [np.median(z)]
    return sorted({round(float(p)) for p in picks})


def overlay_figure(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, path: str | Path, title: str) -> Path:
    """Axial slices of ``image`` with ground-truth (solid) and predicted (dashed) LA and scar contours."""
    slices = overlay_slices(truth)
    fig, axes = plt.subplots(1, len(slices), figsize=(4 * len(slices), 4.4), squeeze=False)
    lo, hi = np.percentile(image, [0.5, 99.5])
    for ax, z in zip(axes[0], slices, strict=True):
        ax.imshow(image[z], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for label, colours, style in ((truth, TRUTH_COLOURS, "solid"), (pred, PRED_COLOURS, "dashed")):
            for (name, colour), mask in zip(colours.items(), (label[z] > 0, label[z] == 2), strict=True):
                if mask.any() and not mask.all():
                    ax.contour(mask.astype(float), levels=[0.5], colors=colour, linewidths=1.0, linestyles=style)
        ax.set_title(f"slice z = {z}", fontsize=9)
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, ls=s, label=f"{who} {n}")
               for who, colours, s in (("truth", TRUTH_COLOURS, "-"), ("prediction", PRED_COLOURS, "--"))
               for n, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return _save(fig, Path(path))


def rate_figure(method_rows: Mapping[str, Sequence[Mapping]], structures: Mapping[str, Sequence[str]],
                path: str | Path) -> Path:
    """Bars of mean over- and under-segmentation rate (OSR, USR) with SD whiskers per method, one panel per
    structure (JAS-GAN Figure 6). ``structures`` maps ``la``/``scar`` to the methods shown in its panel."""
    panels = {s: m for s, m in structures.items() if m}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (structure, methods) in zip(axes[0], panels.items(), strict=True):
        positions = np.arange(len(methods))
        for offset, (rate, colour) in zip((-0.2, 0.2), (("osr", "#d62728"), ("usr", "#1f77b4")), strict=True):
            stats = [mean_sd(float(r[f"{structure}_{rate}"]) for r in method_rows[m]) for m in methods]
            ax.bar(positions + offset, [s["mean"] for s in stats], 0.4, yerr=[s["sd"] for s in stats],
                   color=colour, capsize=3, label=rate.upper())
        ax.set_xticks(positions, methods, rotation=30, ha="right", fontsize=8)
        ax.set(ylabel="rate (fraction of the true volume)", title=f"{'LA' if structure == 'la' else 'scar'}: OSR, USR")
        ax.legend(fontsize=8)
    return _save(fig, Path(path))
