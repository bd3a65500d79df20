"""Does the model segment what it was not trained on? Cohorts of held-out generator families, and a real scan.

A model trained on phantoms can learn its generator instead of the anatomy. The check: hold whole families of the
generator out of training (:mod:`bundle.data.phantom.families`: an intensity model, a pulmonary-vein variant, a
grid), then evaluate on cohorts that draw those families alone (every other family as in training), on a cohort
of the training families (new patients: the in-distribution reference), and on the real CARMA crop of the Cardiac
MRI Toolkit (manual LA cavity and wall; the toolkit's automatic scar), if its files are there. One row per cohort:
scans, LA and scar Dice, the predicted-to-true LA volume ratio, the share of it taken in further than
:data:`~bundle.evaluation.metrics.FAR_MM` from the truth (another structure, not a boundary drawn out), and how many
scans no LA was found in (neither stage 1 nor stage 2's checks and search) and how many only stage 2's search found.

``configs/generalization.yaml`` trains without the held-out families and runs :func:`evaluate_cohorts`;
``configs/evaluate_generalization.yaml`` runs it for a model trained otherwise (the default model).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.atomic import atomic_write_text
from bundle.batch import json_safe
from bundle.data.io import read_image, write_image
from bundle.data.layouts import read_dataset, write_index
from bundle.data.phantom.dataset import ensure_phantoms, scan_families
from bundle.data.phantom.families import WEIGHTS
from bundle.errors import DatasetError
from bundle.evaluation.evaluate import evaluate_predictions
from bundle.evaluation.metrics import FAR_MM
from bundle.inference.segmenter import Segmenter, segment_scans
from bundle.ownership import claim_folder

logger = logging.getLogger(__name__)

GENERALIZATION_KIND = "generalisation check"
"""The kind of folder (:mod:`bundle.ownership`) the check writes its cohorts' predictions and tables into."""

CARMA_FILES = {"image": "autoscar-data.nrrd", "endo": "autoscar-endo.nrrd", "wall": "autoscar-wall.nrrd",
               "scar": "baseline-CMRToolkitAutomaticLeftAtrialScarTest.nrrd"}
"""The real post-ablation crop of the Cardiac MRI Toolkit's test data and its labels (``../shared/data/carma``)."""

TABLE_COLUMNS = ("cohort", "families", "scans", "la_dsc", "la_volume_ratio", "la_far_osr", "scar_dsc", "no_la",
                 "searched")


def training_families(held_out: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Every family's members but the held-out ones (the families a model of the check is trained on).

    Raises:
        ValueError: an unknown family or member, or a family held out entirely.
    """
    out = {}
    for family, members in held_out.items():
        if family not in WEIGHTS:
            raise ValueError(f"unknown phantom family {family!r}; known: {', '.join(WEIGHTS)}")
        unknown = [m for m in members if m not in WEIGHTS[family]]
        if unknown:
            raise ValueError(f"phantom family {family!r} has no members {unknown}")
        kept = [m for m in WEIGHTS[family] if m not in members]
        if not kept:
            raise ValueError(f"holding out every member of {family!r} leaves nothing to train on")
        out[family] = kept
    return out


def held_out_cohorts(held_out: Mapping[str, Sequence[str]]) -> dict[str, dict[str, list[str]]]:
    """The evaluation cohorts: one per held-out member (that family fixed to it, the others as in training) and
    ``in_distribution`` (the training families)."""
    trained = training_families(held_out)
    cohorts = {"in_distribution": dict(trained)}
    for family, members in held_out.items():
        for member in members:
            cohorts[f"{family}_{member}"] = {**trained, family: [member]}
    return cohorts


def carma_dataset(carma_dir: str | Path, out: str | Path) -> Path | None:
    """A one-scan datalist of the real CARMA crop in ``out`` (its LA = manual cavity | manual wall, written beside
    the datalist; its scar = the toolkit's automatic scar); None when the files are not in ``carma_dir``."""
    carma_dir, out = Path(carma_dir), Path(out)
    paths = {k: carma_dir / name for k, name in CARMA_FILES.items()}
    if not all(p.is_file() for p in paths.values()):
        logger.warning("CARMA fixtures not found in %s: the real crop is left out of the check", carma_dir)
        return None
    claim_folder(out, "CARMA crop labels")
    image = read_image(paths["image"])
    endo, wall, scar = (sitk.GetArrayFromImage(read_image(paths[k])) > 0 for k in ("endo", "wall", "scar"))
    la = write_image((endo | wall).astype(np.uint8), out / "carma_la.nii.gz", image)
    scar_file = write_image((scar & (endo | wall)).astype(np.uint8), out / "carma_scar.nii.gz", image)
    record = {"image": str(paths["image"]), "la": str(la), "scar": str(scar_file), "scan": "carma",
              "patient": "carma", "ablation": "post", "endo": None, "wall": None}
    write_index([record], out, "datalist")
    return out


def _row(name: str, families: Mapping | str, summary: Mapping, metrics_csv: Path) -> dict:
    """A table row of one cohort's evaluation summary (mean +- SD over its scans)."""
    from bundle.evaluation.comparison import read_metrics_csv

    rows = [r for r in read_metrics_csv(metrics_csv) if r.get("status") == "ok"]
    ratios = [r["pred_la_ml"] / r["gt_la_ml"] for r in rows if r.get("gt_la_ml", 0) > 0]
    metrics = summary["metrics"]["all"]
    return {
        "cohort": name, "families": families, "scans": summary["n_cases"],
        "la_dsc": metrics["la_dsc"], "scar_dsc": metrics["scar_dsc"], "la_far_osr": metrics["la_far_osr"],
        "la_volume_ratio": {"median": float(np.median(ratios)) if ratios else math.nan,
                            "min": float(min(ratios)) if ratios else math.nan,
                            "max": float(max(ratios)) if ratios else math.nan},
        "no_la": len(summary.get("no_la", [])), "searched": len(summary.get("searched", [])),
        "failed": summary["n_failed"],
        "scar_by_intensity": {member: v["scar_dsc"] for member, v in
                              summary.get("by_family", {}).get("intensity", {}).items()},
    }


def _cohort(segmenter: Segmenter, records: Sequence[Mapping], out: Path, name: str, inputs: Sequence[Path],
            families: Mapping[str, Mapping[str, str]] | None = None) -> tuple:
    segment_scans(records, segmenter, out / name / "predictions", meta={"cohort": name}, save_surface=False,
                  input_dir=inputs[0] if inputs else None)
    summary = evaluate_predictions(out / name / "predictions", records, out / name, plots=False,
                                   meta={"cohort": name}, inputs=inputs, families=families)
    return summary, out / name / "metrics.csv"


def evaluate_cohorts(segmenter: Segmenter, held_out: Mapping[str, Sequence[str]], data_dir: str | Path,
                     out_dir: str | Path, n_patients: int = 4, seed: int = 1, profile: str = "mixed",
                     carma_dir: str | Path | None = None, test_records: Sequence[Mapping] | None = None,
                     layout: str = "datalist", test_families: Mapping[str, Mapping[str, str]] | None = None
                     ) -> list[dict]:
    """Segment and score each held-out cohort (:func:`held_out_cohorts`, ``n_patients`` each, synthesized once into
    ``data_dir/<cohort>`` with ``seed``), the ``test_records`` (the training plan's test split, its phantom scans'
    families ``test_families``) and the CARMA crop; write ``generalization.json`` and ``generalization.md`` into
    ``out_dir``; return the rows (with the scar Dice per intensity model of the phantom cohorts)."""
    out = claim_folder(out_dir, GENERALIZATION_KIND)
    rows = []
    if test_records:
        summary, csv = _cohort(segmenter, test_records, out, "test_split", [], test_families)
        rows.append(_row("test_split", "the training plan's test split", summary, csv))
    for name, families in held_out_cohorts(held_out).items():
        folder = Path(data_dir) / name
        ensure_phantoms(folder, layout, {"n_patients": n_patients, "profile": profile, "seed": seed,
                                         "families": families})
        summary, csv = _cohort(segmenter, read_dataset(folder, layout), out, name, [folder], scan_families(folder))
        rows.append(_row(name, families, summary, csv))
    if carma_dir is not None:
        labels = carma_dataset(carma_dir, out / "carma_labels")
        if labels is not None:
            summary, csv = _cohort(segmenter, read_dataset(labels, "datalist"), out, "carma", [Path(carma_dir)])
            rows.append(_row("carma", "real: the CARMA crop (manual LA, toolkit scar)", summary, csv))
    atomic_write_text(out / "generalization.json",
                      json.dumps(json_safe({"held_out": {k: list(v) for k, v in held_out.items()}, "rows": rows}),
                                 indent=2) + "\n")
    atomic_write_text(out / "generalization.md", format_table(rows))
    for row in rows:
        logger.info("%s: LA DSC %s, scar DSC %s, LA volume ratio %.2f (taken in further than %g mm: %s), no LA in "
                    "%d of %d (stage 2's search found it in %d)", row["cohort"], _cell(row["la_dsc"]),
                    _cell(row["scar_dsc"]), row["la_volume_ratio"]["median"], FAR_MM, _cell(row["la_far_osr"]),
                    row["no_la"], row["scans"], row["searched"])
    return rows


def _cell(value: Mapping) -> str:
    return "n/a" if not value or value.get("n", 0) == 0 else f"{value['mean']:.3f} +- {value['sd']:.3f}"


def format_table(rows: Sequence[Mapping]) -> str:
    """The rows as a Markdown table."""
    lines = ["| cohort | scans | LA DSC | LA volume / truth (median, range) | LA taken in further than "
             f"{FAR_MM:g} mm from the truth (share of its volume) | scar DSC | scar DSC by intensity model (scans) | "
             "no LA found | stage 1 missed, stage 2's search found |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["la_volume_ratio"]
        span = "n/a" if math.isnan(ratio["median"]) else f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"
        by_intensity = ", ".join(f"{m} {v['mean']:.3f} ({v['n']})" for m, v in r.get("scar_by_intensity", {}).items()
                                 if v.get("n", 0)) or "n/a"
        searched = r.get("searched", 0)  # rows written before stage 2 searched have none
        lines.append(f"| {r['cohort']} | {r['scans']} | {_cell(r['la_dsc'])} | {span} | {_cell(r['la_far_osr'])} | "
                     f"{_cell(r['scar_dsc'])} | {by_intensity} | {r['no_la']} | {searched} |")
    return "\n".join(lines) + "\n"


def records_or_none(plan: Mapping | None, dataset_dir: str | Path, layout: str, split: str = "test") -> list[dict]:
    """The ``split`` records of ``plan`` (none when there is no plan or the split is empty)."""
    from bundle.planning.split import split_records

    if plan is None:
        return []
    try:
        return split_records(plan, split, dataset_dir, layout)
    except (DatasetError, ValueError) as err:
        logger.warning("the plan's %s split is left out of the check: %s", split, err)
        return []


