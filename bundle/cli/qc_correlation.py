"""Does the quality check find the bad segmentations? ``qc_score`` and ``qc`` against the Dice, per cohort and pooled.

    python -m monai.bundle run evaluating --config_file "['configs/train.yaml','configs/evaluate.yaml']"
    python -m monai.bundle run evaluating --config_file "['configs/train.yaml','configs/evaluate.yaml','configs/evaluate_shifted.yaml']"
    jasgan-qc-correlation --eval_dirs "['eval','eval/siemens']"

Reads each evaluation's ``metrics.csv`` (written by ``configs/evaluate.yaml``, which carries the inference report's
``qc_score`` and ``qc``) and prints, per folder and for all of them together, Spearman's rho of ``qc_score`` with the
LA and scar Dice, and how many of the worst 10 % of the scans by each Dice (k scans) are among the k lowest by
``qc_score`` and how many have any ``qc`` reason (:func:`bundle.evaluation.evaluate.quality_ranking`). ``--out`` also writes
the numbers as JSON (a new file, or one this tool wrote: another file is not overwritten).
"""

from __future__ import annotations

import json
from pathlib import Path

from bundle.atomic import atomic_write_text
from bundle.batch import json_safe
from bundle.cli import run, setup_logging
from bundle.errors import DatasetError
from bundle.evaluation.comparison import read_metrics_csv
from bundle.evaluation.evaluate import quality_ranking
from bundle.ownership import check_replaceable_file, json_file_with


def _rows(eval_dir: Path) -> list[dict]:
    path = eval_dir / "metrics.csv"
    if not path.is_file():
        raise DatasetError(path, "not found: run configs/evaluate.yaml with --eval_dir first")
    rows = [r for r in read_metrics_csv(path) if r.get("status") == "ok"]
    if rows and "qc_score" not in rows[0]:
        raise DatasetError(path, "has no qc_score column: evaluated before the quality check existed, evaluate again")
    return rows


def _is_ranking_json(path: Path) -> bool:
    """Whether ``path`` is a file this tool wrote: JSON of quality rankings, one per folder (and pooled)."""
    return json_file_with(path, lambda d: isinstance(d, dict) and bool(d)
                          and all(isinstance(v, dict) and "worst_share" in v for v in d.values()))


def _line(name: str, result: dict) -> str:
    parts = [f"{name}: n {result['n']}, flagged {result['flagged']}"]
    for structure in ("la", "scar"):
        r = result[structure]
        rho = r["spearman_qc_score_dice"]
        parts.append(f"{structure.upper()}: rho {rho['rho']:.2f} (p {rho['p']:.2g}); worst {len(r['worst'])} "
                     f"{r['worst']}: {r['worst_lowest_qc_score']} among the lowest qc_score, {r['worst_flagged']} flagged")
    return "; ".join(parts)


def main(eval_dirs: list[str] | tuple[str, ...] | str = ("eval", "eval/siemens"), out: str | None = None,
         log_level: str = "WARNING") -> None:
    """Print the quality check's ranking per evaluation folder and pooled (and write it to ``out`` as JSON)."""
    setup_logging(log_level)
    dirs = [eval_dirs] if isinstance(eval_dirs, str) else list(eval_dirs)
    cohorts = {d: _rows(Path(d)) for d in dirs}
    results = {d: quality_ranking(rows) for d, rows in cohorts.items()}
    if len(dirs) > 1:
        results["pooled"] = quality_ranking([r for rows in cohorts.values() for r in rows])
    for name, result in results.items():
        print(_line(name, result))
    if out:
        check_replaceable_file(out, _is_ranking_json, "quality-check ranking (JSON)")
        atomic_write_text(out, json.dumps(json_safe(results), indent=2) + "\n")


def cli() -> None:
    """``jasgan-qc-correlation``."""
    run(main)


if __name__ == "__main__":
    cli()
