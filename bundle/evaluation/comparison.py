"""Method comparisons laid out like the JAS-GAN paper's Tables IV (LA) and V (scar).

Each method is evaluated on the same test split and gives one row of metrics per scan (``scan``,
``patient``, ``ablation`` and ``la_<metric>`` / ``scar_<metric>`` columns, the metric keys of
:data:`bundle.evaluation.metrics.METRICS`, and ``cavity_<metric>`` where the dataset's labels are LA cavities:
the 2018 challenge's table, :data:`CHALLENGE_METRICS`). For one structure :func:`compare_methods` gives every method's
mean ± SD per metric (NaN values left out, sample SD), picks the best method (highest mean DSC by
default) and tests every other method against it with a two-sided paired t-test per metric, paired
by scan. :func:`format_table` prints the paper's layout, :func:`write_comparison` writes Markdown,
JSON and CSV, and :func:`read_metrics_csv` reads a method's per-case ``metrics.csv`` back.

Paired t-test, by definition here: ``t`` and ``p`` of ``scipy.stats.ttest_rel(method, best)`` over
the scans where both values are finite (``t`` < 0 when the method's mean is lower than the best's);
``t = p = NaN`` when fewer than 2 pairs remain or all paired differences are exactly zero (nothing to
test; never marked significant); t = +-inf and p = 0 when every pair differs by the same non-zero
amount. The best method itself is not tested: ``t = p = NaN``, ``n_pairs = 0``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from bundle.atomic import atomic_write_text
from bundle.batch import json_safe, rows_to_csv
from bundle.errors import DatasetError
from bundle.evaluation.metrics import CAVITY_METRICS, FAR_MM, METRICS
from bundle.evaluation.statistics import mean_sd
from bundle.ownership import claim_folder

STRUCTURES = ("la", "scar", "cavity")
"""Column prefixes of the per-case metric rows: ``la_dsc``, ``scar_dsc``, ``cavity_dsc``, ..."""

PAPER_METRICS = ("dsc", "jaccard", "asd_mm", "nmi")
"""The columns of the paper's Tables IV and V: DSC, JI, ASD (mm), NMI."""

CHALLENGE_METRICS = CAVITY_METRICS
"""The columns of the cavity table: the 2018 challenge's Dice, Jaccard, HD95 and ASD, in mm and in voxels."""

ALL_METRICS = tuple(dict.fromkeys(METRICS + CAVITY_METRICS))
"""Every metric a comparison can tabulate."""

LOWER_IS_BETTER = frozenset({"asd_mm", "hd95_mm", "asd_vox", "hd95_vox", "osr", "usr", "far_osr"})
"""Metrics where a lower value is better (distances and over/under-segmentation rates)."""

METRIC_LABELS = {
    "dsc": "DSC", "jaccard": "JI", "asd_mm": "ASD (mm)", "hd95_mm": "HD95 (mm)", "nmi": "NMI", "osr": "OSR",
    "usr": "USR", "far_osr": f"OSR > {FAR_MM:g} mm", "hd95_vox": "HD95 (voxels)", "asd_vox": "ASD (voxels)",
}
"""Column headers as the paper writes them."""

TABLE_TITLES = {"la": ("Table IV", "LA segmentation"), "scar": ("Table V", "scar segmentation"),
                "cavity": ("2018 challenge", "LA cavity segmentation")}
"""The paper's table and its subject for each structure."""

ALPHA = 0.05
"""Significance level of the ``*`` marks (the paper's P-values < 0.05)."""

COMPARISON_KIND = "method comparison"
"""The kind of folder (:mod:`bundle.ownership`) a comparison's output folder is claimed as."""

SIGNIFICANT_MARK = "*"
BEST_MARK = "(best)"
MISSING_CELL = "n/a"
MAX_LISTED_SCANS = 5
"""How many missing or failed scans an error message names."""

TEXT_COLUMNS = ("scan", "patient", "ablation", "status", "image", "label", "layout", "error", "stage1", "qc")
"""Columns of ``metrics.csv`` kept as strings; every other column must be numeric (empty = NaN)."""

OK_STATUS = "ok"
COMPARISON_FILES = ("comparison.md", "comparison.json", "comparison.csv")
RATE_FIGURE = "osr_usr.png"
CSV_FIELDS = ("structure", "method", "metric", "mean", "sd", "n", "t", "p", "n_pairs", "significant", "best")
"""Columns of ``comparison.csv``: one row per structure x method x metric."""


def _listed(scans: Sequence[str]) -> str:
    shown = ", ".join(repr(s) for s in scans[:MAX_LISTED_SCANS])
    more = len(scans) - MAX_LISTED_SCANS
    return shown + (f" and {more} more" if more > 0 else "")


def _number(value: object, where: str) -> float:
    """``value`` (a float, an int or a numeric string; None or "" for NaN) as a float."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"{where}: {value!r} is not a number")


def _scan_index(method: str, rows: Sequence[Mapping]) -> dict[str, Mapping]:
    """``{scan: row}`` of one method; raises on no rows, a row without scan, a duplicate or a failed scan."""
    if not rows:
        raise ValueError(f"method {method!r} has no rows")
    index: dict[str, Mapping] = {}
    for i, row in enumerate(rows):
        scan = str(row.get("scan") or "")
        if not scan:
            raise ValueError(f"method {method!r}: row {i} has no scan")
        if scan in index:
            raise ValueError(f"method {method!r}: scan {scan!r} appears more than once")
        index[scan] = row
    failed = [s for s, r in index.items() if str(r.get("status") or OK_STATUS) != OK_STATUS]
    if failed:
        raise ValueError(
            f"method {method!r} failed on {len(failed)} scan(s): {_listed(failed)}; a comparison needs every "
            "scan of the same test split evaluated (status 'ok')"
        )
    return index


def paired_t_test(values: Sequence[float], best: Sequence[float]) -> dict[str, float | int]:
    """Two-sided paired t-test of ``values`` against ``best`` (same scans, same order), NaN pairs dropped.

    ``t`` = mean(d) / (SD(d) / sqrt(n)) with d = values - best (``scipy.stats.ttest_rel``); ``t = p = NaN``
    when fewer than 2 pairs remain or all differences are zero; ``t = +-inf, p = 0`` when all are the same
    non-zero value.
    """
    a, b = np.asarray(values, dtype=np.float64), np.asarray(best, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired t-test needs two equally long series, got {a.size} and {b.size}")
    a, b = (np.where(np.isfinite(x), x, np.nan) for x in (a, b))  # an infinite value is as missing as NaN
    diff = a - b
    diff = diff[~np.isnan(diff)]  # the pairs ttest_rel(nan_policy="omit") keeps
    n = int(diff.size)
    if n < 2 or np.allclose(diff, 0.0, rtol=0.0, atol=1e-12):
        return {"t": math.nan, "p": math.nan, "n_pairs": n}
    if np.allclose(diff, diff[0], rtol=1e-9, atol=1e-12):  # the same non-zero difference on every scan (to
        # rounding): t is infinite, p = 0 (scipy would divide by a zero SD, or by rounding noise)
        return {"t": math.copysign(math.inf, float(diff[0])), "p": 0.0, "n_pairs": n}
    result = stats.ttest_rel(a, b, nan_policy="omit")
    return {"t": float(result.statistic), "p": float(result.pvalue), "n_pairs": n}


def compare_methods(
    method_rows: Mapping[str, Sequence[Mapping]],
    structure: str,
    metrics: Sequence[str] = PAPER_METRICS,
    best_by: str = "dsc",
) -> dict:
    """One structure's comparison of methods on the same test split, as in the paper's Tables IV and V.

    Returns ``{"structure", "metrics", "best_by", "best", "alpha", "n_scans", "scans", "methods"}`` where
    ``methods`` maps each method (in the given order) to ``{metric: {"mean", "sd", "n", "t", "p",
    "n_pairs", "significant"}}``: mean ± sample SD over the finite values, and the paired t-test versus
    the best method (highest mean of ``best_by``, lowest for :data:`LOWER_IS_BETTER`; the first wins a tie).

    Raises:
        ValueError: an unknown structure or metric, a method with a failed scan (``status`` not ``ok``),
            missing scans another method has, a missing or non-numeric metric value, or no method with a
            finite mean of ``best_by``.
    """
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
    metrics = list(metrics)
    unknown = [m for m in [*metrics, best_by] if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"metrics must be a non-empty selection of {ALL_METRICS}, got {metrics} (best_by {best_by!r})")
    if not method_rows:
        raise ValueError("no methods to compare")

    indexes = {method: _scan_index(method, rows) for method, rows in method_rows.items()}
    scans = list(dict.fromkeys(s for index in indexes.values() for s in index))
    for method, index in indexes.items():
        missing = [s for s in scans if s not in index]
        if missing:
            raise ValueError(
                f"method {method!r} lacks {len(missing)} scan(s) other methods have: {_listed(missing)}; "
                "all methods must be evaluated on the same test split"
            )

    needed = list(dict.fromkeys([*metrics, best_by]))
    values: dict[str, dict[str, np.ndarray]] = {}
    for method, index in indexes.items():
        values[method] = {}
        for metric in needed:
            column = f"{structure}_{metric}"
            series = []
            for scan in scans:
                row = index[scan]
                if column not in row:
                    raise ValueError(f"method {method!r}, scan {scan!r}: no column {column!r}")
                series.append(_number(row[column], f"method {method!r}, scan {scan!r}, column {column!r}"))
            values[method][metric] = np.asarray(series, dtype=np.float64)

    sign = -1.0 if best_by in LOWER_IS_BETTER else 1.0
    ranking = {m: sign * mean_sd(v[best_by])["mean"] for m, v in values.items()}
    finite = {m: score for m, score in ranking.items() if math.isfinite(score)}
    if not finite:
        raise ValueError(f"no method has a finite mean {structure}_{best_by} to choose the best method by")
    best = max(finite, key=finite.__getitem__)  # max keeps the first of equal scores: the given order

    methods: dict[str, dict[str, dict]] = {}
    for method, series in values.items():
        methods[method] = {}
        for metric in metrics:
            if method == best:
                test = {"t": math.nan, "p": math.nan, "n_pairs": 0}
            else:
                test = paired_t_test(series[metric], values[best][metric])
            significant = bool(math.isfinite(test["p"]) and test["p"] < ALPHA)
            methods[method][metric] = {**mean_sd(series[metric]), **test, "significant": significant}
    return {
        "structure": structure, "metrics": metrics, "best_by": best_by, "best": best, "alpha": ALPHA,
        "n_scans": len(scans), "scans": scans, "methods": methods,
    }


def format_value(value: float) -> str:
    """A mean or SD as the paper prints it: 3 decimals below 1 (0.946, 0.015), else 3 significant digits
    (1.61, 22.3; whole numbers from 100 on); ``n/a`` for NaN."""
    if value is None or not math.isfinite(value):
        return MISSING_CELL
    if abs(value) < 1:
        return f"{value:.3f}"
    rounded = float(f"{value:.3g}")  # so that 9.996 -> 10.0, not 10.00
    digits = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{value:.{digits}f}"


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """Markdown table lines with padded columns (readable as plain text as well)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def format_table(table: Mapping) -> str:
    """The paper's Table IV/V layout in Markdown: ``| Method | DSC | JI | ASD (mm) | NMI |``, one row per method.

    Cells are ``mean ± SD``; the best method is marked ``(best)`` and a cell of another method gets ``*``
    when its paired t-test versus the best has p < 0.05. A caption line comes first and, where a metric
    was undefined for some scans (NaN), a note line with the counts used follows the table.
    """
    title, subject = TABLE_TITLES.get(table["structure"], ("Table", f"{table['structure']} segmentation"))
    best, n_scans, metrics = table["best"], table["n_scans"], table["metrics"]
    direction = "lowest" if table["best_by"] in LOWER_IS_BETTER else "highest"
    caption = (
        f"{title} layout: {subject}, mean ± SD over {n_scans} scans; {SIGNIFICANT_MARK} p < {table['alpha']:g} "
        f"(paired t-test vs {best}); {BEST_MARK} = {direction} mean {METRIC_LABELS[table['best_by']]}"
    )
    rows = [["Method", *(METRIC_LABELS[m] for m in metrics)]]
    for method, cells in table["methods"].items():
        row = [f"{method} {BEST_MARK}" if method == best else method]
        for metric in metrics:
            cell = cells[metric]
            text = f"{format_value(cell['mean'])} ± {format_value(cell['sd'])}"
            row.append(text + (SIGNIFICANT_MARK if cell["significant"] else ""))
        rows.append(row)
    lines = [caption, "", *_aligned(rows)]
    partial = []
    for metric in metrics:
        counts = [f"{m} {c[metric]['n']}" for m, c in table["methods"].items() if c[metric]["n"] < n_scans]
        if counts:
            partial.append(f"{METRIC_LABELS[metric]}: " + ", ".join(counts))
    if partial:
        lines += ["", f"Scans with a defined value, where fewer than {n_scans}: " + "; ".join(partial) + "."]
    return "\n".join(lines)


def comparison_rows(tables: Mapping[str, Mapping]) -> list[dict]:
    """One flat row per structure x method x metric (the columns of :data:`CSV_FIELDS`)."""
    rows = []
    for table in tables.values():
        for method, cells in table["methods"].items():
            for metric in table["metrics"]:
                cell = cells[metric]
                rows.append({
                    "structure": table["structure"], "method": method, "metric": metric,
                    **{k: cell[k] for k in ("mean", "sd", "n", "t", "p", "n_pairs", "significant")},
                    "best": method == table["best"],
                })
    return rows


def write_comparison(tables: Mapping[str, Mapping], out_dir: str | Path) -> list[Path]:
    """Write ``comparison.md`` (the tables), ``comparison.json`` (all numbers, NaN as null) and
    ``comparison.csv`` (:func:`comparison_rows`) atomically into ``out_dir``; returns their paths."""
    if not tables:
        raise ValueError("no comparison tables to write")
    out_dir = Path(out_dir)
    md_name, json_name, csv_name = COMPARISON_FILES
    markdown = "# Method comparison (JAS-GAN Tables IV and V layout)\n\n"
    markdown += "\n\n".join(format_table(t) for t in tables.values()) + "\n"
    document = json.dumps(json_safe(dict(tables)), indent=2, allow_nan=False) + "\n"
    return [
        atomic_write_text(out_dir / md_name, markdown),
        atomic_write_text(out_dir / json_name, document),
        atomic_write_text(out_dir / csv_name, rows_to_csv(comparison_rows(tables), CSV_FIELDS)),
    ]


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Per-case metric rows of a ``metrics.csv``: :data:`TEXT_COLUMNS` as strings, all others as floats (empty = NaN).

    Raises:
        DatasetError: the file is missing, not UTF-8 CSV, empty, without a ``scan`` column, has a row with
            another number of fields than the header, an empty or repeated scan, or a non-numeric value
            (named with its column, line and scan).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "metrics file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(path, f"cannot read the metrics file as UTF-8 text ({err})") from err
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[dict] = []
    first_line: dict[str, int] = {}
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DatasetError(path, "empty metrics file (no header line)")
        header = [h.strip() for h in header]
        if "scan" not in header:
            raise DatasetError(path, f"no 'scan' column (columns: {', '.join(header)})")
        repeated = sorted({h for h in header if header.count(h) > 1})
        if repeated:
            raise DatasetError(path, f"repeated column(s) {', '.join(repeated)}")
        for fields in reader:
            line = reader.line_num
            if not fields or not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise DatasetError(path, f"line {line} has {len(fields)} fields, the header has {len(header)}")
            raw = dict(zip(header, fields))
            scan = raw["scan"].strip()
            if not scan:
                raise DatasetError(path, f"line {line}: empty scan")
            if scan in first_line:
                raise DatasetError(path, f"line {line}: scan {scan!r} repeats line {first_line[scan]}")
            first_line[scan] = line
            row: dict[str, object] = {}
            for column, value in raw.items():
                if column in TEXT_COLUMNS:
                    row[column] = value.strip()
                    continue
                try:
                    row[column] = _number(value, f"line {line}, column {column!r} (scan {scan!r})")
                except ValueError as err:
                    raise DatasetError(path, str(err)) from err
            rows.append(row)
    except csv.Error as err:
        raise DatasetError(path, f"malformed CSV near line {reader.line_num}: {err}") from err
    if not rows:
        raise DatasetError(path, "no case rows below the header")
    return rows


def _scored(rows: Sequence[Mapping], structure: str) -> bool:
    """Whether a method's metric rows score ``structure``: the cavity where the dataset gives cavity labels, the
    scar unless it has no scar labels (``scar_labels`` none)."""
    return any(math.isfinite(float(r.get(f"{structure}_dsc", math.nan))) for r in rows)


def method_slug(method: str) -> str:
    """A folder name for a method's evaluation outputs (``JAS-GAN`` -> ``JAS-GAN``, ``IIR > 1.2`` -> ``IIR_1.2``)."""
    slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in method.strip())
    return "_".join(part for part in slug.split("_") if part) or "method"


def compare_folders(
    methods: Mapping[str, str | Path], records: Sequence[Mapping], out_dir: str | Path,
    la_methods: Sequence[str] | None = None, metrics: Sequence[str] = PAPER_METRICS,
    scar_methods: Sequence[str] | None = None, inputs: Sequence[str | Path | None] = (),
) -> dict[str, dict]:
    """Evaluate each method's prediction folder on the same scans and compare them (Tables IV and V).

    ``out_dir`` is claimed first (:mod:`bundle.ownership`): never inside ``inputs`` (the dataset) or a prediction
    folder the bundle did not write.

    ``methods`` maps a method's name to its prediction folder (:mod:`bundle.data.predictions` format);
    ``records`` are the dataset records of the test split. Each method's ``metrics.csv`` and
    ``summary.json`` go to ``<out_dir>/<method>/``, the tables to ``<out_dir>/comparison.*`` and the
    over/under-segmentation rates (Figure 6) to ``<out_dir>/osr_usr.png``.
    ``la_methods`` limits the LA table (Table IV) to methods that segment the LA themselves: a
    classical baseline thresholds inside the ground-truth LA wall, so its LA is the truth.
    ``scar_methods`` likewise limits the scar table (Table V) to methods that segment scar (not the
    multi-task U-Net, which segments only the LA). Both default to all methods; a dataset without scar labels
    (``scar_labels`` none) has no scar table. Where the scans' labels are LA
    cavities (every LA method has cavity metrics), a third table compares the LA methods' cavities with the 2018
    challenge's metrics (:data:`CHALLENGE_METRICS`).

    Raises:
        ValueError: fewer than one method, an LA method not among ``methods``, or a method that failed on
            a scan (its ``metrics.csv`` says why).
    """
    from bundle.evaluation.evaluate import evaluate_predictions

    if not methods:
        raise ValueError("no prediction folders to compare")
    la_methods = list(methods) if la_methods is None else list(la_methods)
    scar_methods = list(methods) if scar_methods is None else list(scar_methods)
    unknown = [m for m in la_methods + scar_methods if m not in methods]
    if unknown:
        raise ValueError(f"LA or scar methods {unknown} are not among the compared methods {list(methods)}")
    if not la_methods and not scar_methods:
        raise ValueError("neither an LA nor a scar method to compare")
    slugs = [method_slug(m) for m in methods]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"method names must differ after making folder names of them: {slugs}")
    out_dir = claim_folder(out_dir, COMPARISON_KIND, inputs=[*inputs, *methods.values()])
    rows = {}
    for method, slug in zip(methods, slugs, strict=True):
        evaluate_predictions(methods[method], records, out_dir / slug, plots=False, meta={"method": method},
                             inputs=inputs)
        rows[method] = read_metrics_csv(out_dir / slug / "metrics.csv")
    tables = {}
    if la_methods:
        tables["la"] = compare_methods({m: rows[m] for m in la_methods}, "la", metrics)
    if scar_methods and any(_scored(rows[m], "scar") for m in scar_methods):  # not without scar labels
        tables["scar"] = compare_methods({m: rows[m] for m in scar_methods}, "scar", metrics)
    if la_methods and any(_scored(rows[m], "cavity") for m in la_methods):
        tables["cavity"] = compare_methods({m: rows[m] for m in la_methods}, "cavity", CHALLENGE_METRICS)
    write_comparison(tables, out_dir)
    from bundle.evaluation.plots import rate_figure  # matplotlib only here

    rate_figure(rows, {"la": la_methods, "scar": scar_methods}, out_dir / RATE_FIGURE)
    return tables
