"""Evaluate a prediction folder against a dataset's labels: per-case metrics, scar burden, summary, plots.

What the JAS-GAN paper reports (Section IV-C, Table I, Figures 3-5, 9, 10): for LA and scar the
metrics of :mod:`bundle.evaluation.metrics`; where the dataset's labels are LA cavities (the 2018 challenge's
``laendo``, LAScarQS), also the cavity as the challenge scores it (``cavity_*``: Dice, Jaccard, HD95 and ASD in mm
and voxels of the predicted LA minus its derived wall and scar against the given cavity); the scar volume and scar % of the LA wall of prediction and ground
truth (each from its own LA's wall, :func:`bundle.data.wall.scar_burden`); mean +- SD per pre-ablation,
post-ablation and all scans; Pearson r and Bland-Altman agreement of the scar volume and scar %.

For phantom scans (``families``: each scan's generator families, :func:`bundle.data.phantom.dataset.scan_families`)
also LA and scar Dice per member of each family (``by_family``): a model that misses the scar of one intensity model
shows there, where the mean over all scans hides it.

Outputs in ``out_dir``: ``metrics.csv`` (a row per case), ``summary.json``, and PNG plots
(``scar_volume.png``, ``scar_percent.png``, ``overlay_best_<scan>.png``, ``overlay_worst_<scan>.png``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from bundle.atomic import atomic_write_text
from bundle.batch import json_safe, rows_to_csv, run_batch
from bundle.data.case import Case
from bundle.data.io import axial_array
from bundle.data.labels import la_mask, scar_mask
from bundle.data.layouts import load_case, scar_label_set
from bundle.data.toolkit import DILATION_RADIUS_VOXELS
from bundle.data.wall import derived_cavity
from bundle.data.predictions import read_prediction
from bundle.evaluation.metrics import CAVITY_METRICS, METRICS, cavity_metrics, segmentation_metrics
from bundle.evaluation.statistics import GROUPS, bland_altman, group_members, mean_sd, pearson, spearman, summarize
from bundle.inference.localizer import NO_LA
from bundle.ownership import claim_folder
from bundle.preprocessing.roi import Roi
from bundle.quantification.burden import quantify
from bundle.quantification.qc import OK

logger = logging.getLogger(__name__)

EVALUATION_KIND = "evaluation"
"""The kind of folder (:mod:`bundle.ownership`) an evaluation's output folder is claimed as."""

STRUCTURES = {"la": la_mask, "scar": scar_mask}
"""Evaluated structures and how each is taken from a label map (0/1/2)."""

CAVITY_COLUMNS = tuple(f"cavity_{m}" for m in CAVITY_METRICS)
"""Per-case cavity columns (empty where the dataset gives no cavity): ``cavity_dsc`` ... ``cavity_asd_vox``."""

METRIC_COLUMNS = tuple(f"{s}_{m}" for s in STRUCTURES for m in METRICS) + CAVITY_COLUMNS
"""Per-case metric columns of ``metrics.csv``: ``la_dsc`` ... ``scar_usr``, then :data:`CAVITY_COLUMNS`."""

QUANTITIES = {"scar_volume": ("scar_ml", "ml"), "scar_percent": ("scar_percent", "% of LA wall")}
"""Scar burden quantities compared between prediction and ground truth (Figures 9, 10): key, unit."""

CASE_FIELDS = ("scan", "patient", "ablation", "status")
STAGE_COLUMNS = ("stage1", "roi_recall")
"""What stage 1 did for the case (``found``, ``crop``, ``none``) and the share of the true LA inside its ROI."""
QC_COLUMNS = ("qc_score", "qc")
"""The inference report's quality check, carried into ``metrics.csv`` (:mod:`bundle.quantification.qc`, :mod:`bundle.quantification.quality`)."""

WORST_SHARE = 0.1
"""The quality check is judged on how many of the worst tenth of the scans by Dice it flags."""

RANK_METRIC = "scar_dsc"
"""Metric that picks the best and the worst case for the overlay figures."""


def evaluate_case(truth: np.ndarray, pred: np.ndarray, case: Case, score_scar: bool = True) -> dict[str, float]:
    """Metrics of LA and scar and the scar burden of ground truth (``gt_``) and prediction (``pred_``), two
    label maps on ``case``'s grid; the cavity metrics where ``case.cavity`` is given (NaN otherwise). Without scar
    labels (``score_scar=False``) the scar metrics are NaN: nothing to score them against."""
    row: dict[str, float] = {}
    for name, mask in STRUCTURES.items():
        if name == "scar" and not score_scar:
            row.update({f"scar_{k}": math.nan for k in METRICS})
            continue
        values = segmentation_metrics(mask(pred), mask(truth), case.spacing)
        row.update({f"{name}_{k}": v for k, v in values.items()})
    if case.cavity is not None:
        cavity = derived_cavity(pred, case.spacing, radius_voxels=DILATION_RADIUS_VOXELS)  # the layouts' LA rule
        values = cavity_metrics(cavity, case.cavity, case.spacing)
        row.update({f"cavity_{k}": v for k, v in values.items()})
    else:
        row.update(dict.fromkeys(CAVITY_COLUMNS, math.nan))
    for prefix, label in (("gt", truth), ("pred", pred)):
        row.update({f"{prefix}_{k}": v for k, v in quantify(label, case).items()})
    return row


def scored_scar(record: Mapping) -> bool:
    """Whether a record's scar is scored: not when its label set is ``none`` (no scar labels, none trained)."""
    return scar_label_set(record["layout"], record.get("scar_labels")) != "none"


def inference_rows(prediction_dir: str | Path) -> dict[str, dict]:
    """The rows of the inference ``report.json`` beside a prediction folder, by scan (empty when there is none,
    e.g. for a baseline's folder)."""
    path = Path(prediction_dir) / "report.json"
    if not path.is_file():
        return {}
    try:
        return {str(r.get("scan")): r for r in json.loads(path.read_text(encoding="utf-8")).get("scans", [])}
    except (json.JSONDecodeError, OSError, AttributeError) as err:
        logger.warning("ignoring the unreadable inference report %s: %s", path, err)
        return {}


def roi_recall(row: Mapping, label: np.ndarray) -> float:
    """Share of the true LA voxels of ``label`` (z, y, x) inside the ROI of an inference report row (its
    ``roi_start``/``roi_stop`` are x, y, z voxel ranges of the same scan); NaN without a ROI in the row."""
    la = np.asarray(label) > 0
    if row.get("status") == NO_LA:
        return 1.0 if not la.any() else 0.0
    start, stop = row.get("roi_start"), row.get("roi_stop")
    if not start or not stop:
        return float("nan")
    return Roi(tuple(int(v) for v in start[::-1]), tuple(int(v) for v in stop[::-1])).recall(la)


def _agreement_of(truth: Sequence[float], pred: Sequence[float]) -> dict:
    """Pearson r (with the regression line) and Bland-Altman of one series pair; None with the reason when
    it cannot be computed (too few cases, a constant series)."""
    entry: dict = {"n": len(truth)}
    for stat, function in (("pearson", pearson), ("bland_altman", bland_altman)):
        try:
            value = function(truth, pred)
        except ValueError as err:
            value, entry[f"{stat}_error"] = None, str(err)
        entry[stat] = value
    return entry


def agreement(rows: Sequence[Mapping], group_key: str = "ablation") -> dict[str, dict]:
    """Per scar quantity, ``{"unit", "pre", "post", "all"}``: Pearson r with the regression line and
    Bland-Altman bias and limits of prediction against truth in each group (Figures 9 and 10 show
    pre- and post-ablation apart)."""
    out = {}
    for name, (key, unit) in QUANTITIES.items():
        out[name] = {"unit": unit}
        for group in GROUPS:
            members = group_members(rows, group, group_key)
            truth = [float(r[f"gt_{key}"]) for r in members]
            pred = [float(r[f"pred_{key}"]) for r in members]
            out[name][group] = _agreement_of(truth, pred)
    return out


FAMILY_METRICS = ("la_dsc", "scar_dsc")
"""What ``by_family`` summarises per member of each phantom family."""


def family_summary(rows: Sequence[Mapping], families: Mapping[str, Mapping[str, str]]) -> dict[str, dict]:
    """``{family: {member: {"cases": n, "la_dsc": mean_sd, "scar_dsc": mean_sd}}}`` of the ``rows`` whose scan has
    families in ``families`` (scan -> {family: member}); members in order of first appearance."""
    out: dict[str, dict] = {}
    for row in rows:
        for family, member in families.get(row["scan"], {}).items():
            out.setdefault(family, {}).setdefault(member, []).append(row)
    return {family: {member: {"cases": len(members), **{m: mean_sd(float(r[m]) for r in members if m in r)
                                                         for m in FAMILY_METRICS}}
                     for member, members in by_member.items()}
            for family, by_member in out.items()}


def evaluate_predictions(
    prediction_dir: str | Path, records: Sequence[Mapping], out_dir: str | Path, plots: bool = True,
    meta: Mapping | None = None, inputs: Sequence[str | Path | None] = (),
    families: Mapping[str, Mapping[str, str]] | None = None,
) -> dict:
    """Evaluate ``<prediction_dir>/<scan>/`` against each dataset record's labels; write the outputs.
    ``families`` (scan -> {family: member}, phantom scans) adds the per-family summary ``by_family``.

    A case whose labels or prediction cannot be read is a ``failed`` row of ``metrics.csv`` and is
    left out of the summary. Returns the summary (also written as ``summary.json``). ``out_dir`` is claimed first
    (:mod:`bundle.ownership`; never inside ``inputs`` or ``prediction_dir`` unless the bundle wrote them).
    """
    out_dir = claim_folder(out_dir, EVALUATION_KIND, inputs=[*inputs, prediction_dir])
    inference = inference_rows(prediction_dir)

    def predicted(record: Mapping, case: Case) -> np.ndarray:
        if inference.get(record["scan"], {}).get("status") == NO_LA:  # stage 1 found no LA: an empty prediction
            return np.zeros(case.label.shape, np.uint8)
        return read_prediction(prediction_dir, record["scan"], case, record["image"])

    def process(record: Mapping) -> dict:
        case = load_case(dict(record))
        done = inference.get(record["scan"], {})
        pred = predicted(record, case)
        stage = {"stage1": done.get("stage1", ""), "roi_recall": roi_recall(done, case.label)}
        qc = {"qc_score": _number(done.get("qc_score")), "qc": done.get("qc", "")}
        return {"patient": case.patient, "ablation": case.ablation, **stage, **qc,
                **evaluate_case(case.label, pred, case, score_scar=scored_scar(record))}

    rows = run_batch(records, process, what="evaluation")
    burden = tuple(f"{p}_{k}" for p in ("gt", "pred") for k in ("la_ml", "wall_ml", "scar_ml", "scar_percent"))
    atomic_write_text(out_dir / "metrics.csv",
                      rows_to_csv(rows, CASE_FIELDS + METRIC_COLUMNS + STAGE_COLUMNS + QC_COLUMNS + burden))
    ok = [r for r in rows if r["status"] == "ok"]
    summary = {
        "meta": {"predictions": str(prediction_dir), **(meta or {})},
        "n_cases": len(rows),
        "n_failed": len(rows) - len(ok),
        "failed": {r["scan"]: r.get("error", "") for r in rows if r["status"] != "ok"},
        "metrics": summarize(ok, METRIC_COLUMNS + ("roi_recall",) + tuple(f"{p}_{k}" for p in ("gt", "pred")
                                                                          for k, _ in QUANTITIES.values())),
        "roi_recall_min": min((r["roi_recall"] for r in ok if math.isfinite(r["roi_recall"])), default=None),
        "no_la": [r["scan"] for r in ok if r.get("stage1") == "none"],
        "searched": [r["scan"] for r in ok if r.get("stage1") == "searched"],  # stage 1 missed, stage 2 found
        "cavity_scored": any(math.isfinite(r["cavity_dsc"]) for r in ok),
        "scar_scored": any(math.isfinite(r["scar_dsc"]) for r in ok),
        "agreement": agreement(ok) if ok else {},
        "quality_check": quality_ranking(ok),
    }
    if families:
        summary["by_family"] = family_summary(ok, families)
    atomic_write_text(out_dir / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")
    if plots and ok:
        from bundle.evaluation import plots as figures  # matplotlib only when plots are asked for

        figures.agreement_figures(ok, summary["agreement"], out_dir, QUANTITIES)
        by_scan = {r["scan"]: r for r in records}
        for tag, row in extreme_cases(ok, RANK_METRIC if summary["scar_scored"] else "la_dsc").items():
            case = load_case(dict(by_scan[row["scan"]]))
            pred = predicted(by_scan[row["scan"]], case)
            image, truth, pred = (axial_array(a, case) for a in (case.image, case.label, pred))
            figures.overlay_figure(image, truth, pred, out_dir / f"overlay_{tag}_{row['scan']}.png",
                                   f"{tag} case {row['scan']}: LA DSC {row['la_dsc']:.3f}, scar DSC "
                                   f"{row['scar_dsc']:.3f}")
    cavity = (f", cavity DSC {summary['metrics']['all']['cavity_dsc']['mean']:.3f}" if summary["cavity_scored"]
              else "")
    scar = (f"scar DSC {summary['metrics']['all']['scar_dsc']['mean']:.3f}" if summary["scar_scored"]
            else "scar not scored (no scar labels)")
    logger.info("evaluated %d cases (%d failed) into %s: LA DSC %.3f, %s%s", len(rows), len(rows) - len(ok),
                out_dir, summary["metrics"]["all"]["la_dsc"]["mean"], scar, cavity)
    for family, members in summary.get("by_family", {}).items():
        logger.info("  by %s: %s", family, "; ".join(
            f"{member} ({v['cases']}) LA {v['la_dsc']['mean']:.3f}, scar {v['scar_dsc']['mean']:.3f}"
            for member, v in members.items()))
    return summary


def _number(value: object) -> float:
    """A report value as a float (None, empty and text as NaN)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def quality_ranking(rows: Sequence[Mapping], worst_share: float = WORST_SHARE) -> dict:
    """Whether the quality check finds the bad segmentations: per structure (LA, scar), Spearman's rho of ``qc_score``
    with the Dice, and of the worst ``worst_share`` of the scans by that Dice (k scans, at least one) how many are
    among the k lowest by ``qc_score`` (a threshold-free view of "ranks bad segmentations low") and how many have
    any ``qc`` reason."""
    scores = [_number(r.get("qc_score")) for r in rows]
    scored = sorted((i for i in range(len(rows)) if math.isfinite(scores[i])), key=lambda i: scores[i])
    out: dict = {"worst_share": worst_share, "n": len(rows), "n_scored": len(scored),
                 "flagged": sum(r.get("qc", OK) not in (OK, "") for r in rows)}
    for structure in ("la", "scar"):
        dice = [_number(r.get(f"{structure}_dsc")) for r in rows]
        ranked = sorted((i for i in range(len(rows)) if math.isfinite(dice[i])), key=lambda i: dice[i])
        worst = ranked[: max(1, math.ceil(worst_share * len(ranked)))] if ranked else []
        lowest = set(scored[: len(worst)])
        out[structure] = {
            "spearman_qc_score_dice": spearman(scores, dice),
            "worst": [rows[i]["scan"] for i in worst],
            "worst_lowest_qc_score": sum(i in lowest for i in worst) if scored else None,  # None: no qc_score
            "worst_flagged": sum(rows[i].get("qc", OK) not in (OK, "") for i in worst),
        }
    return out


def extreme_cases(rows: Sequence[Mapping], metric: str = RANK_METRIC) -> dict[str, Mapping]:
    """The ``best`` and ``worst`` rows by ``metric`` (NaN last); one entry when there is one case."""
    ranked = sorted(rows, key=lambda r: -float(r[metric]) if math.isfinite(float(r[metric])) else math.inf)
    return {"best": ranked[0], "worst": ranked[-1]} if len(ranked) > 1 else {"best": ranked[0]}
