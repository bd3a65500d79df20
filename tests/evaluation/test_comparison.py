"""Method comparisons in the layout of the paper's Tables IV and V, on made-up per-case rows with known answers."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics

import pytest
from scipy import stats

from bundle.batch import rows_to_csv
from bundle.errors import DatasetError
from bundle.evaluation.comparison import (
    CSV_FIELDS,
    LOWER_IS_BETTER,
    PAPER_METRICS,
    compare_methods,
    format_table,
    format_value,
    paired_t_test,
    read_metrics_csv,
    write_comparison,
)

NAN = math.nan
SCANS = ("P001_pre", "P001_post", "P002_pre", "P002_post", "P003_pre", "P003_post")

# Per-scan scar values of three methods (in SCANS order). JAS-GAN has the highest mean DSC; 3D Unet is
# consistently a little worse (p < 0.05 on DSC/JI/NMI); 2SD is erratic (p >= 0.05) but has the lowest ASD.
SCAR = {
    "2SD": {
        "dsc": [0.90, 0.60, 0.85, 0.70, 0.92, 0.58],
        "jaccard": [0.82, 0.43, 0.74, 0.54, 0.85, 0.41],
        "asd_mm": [0.20, 0.60, 0.15, 0.55, 0.10, 0.50],
        "nmi": [0.80, 0.50, 0.75, 0.60, 0.82, 0.47],
    },
    "3D Unet": {
        "dsc": [0.75, 0.81, 0.72, 0.78, 0.70, 0.77],
        "jaccard": [0.60, 0.68, 0.56, 0.64, 0.54, 0.63],
        "asd_mm": [0.60, NAN, 0.70, 0.65, 0.50, 0.55],
        "nmi": [0.63, 0.70, 0.60, 0.67, 0.58, 0.66],
    },
    "JAS-GAN": {
        "dsc": [0.80, 0.85, 0.78, 0.82, 0.76, 0.83],
        "jaccard": [0.67, 0.74, 0.64, 0.69, 0.61, 0.71],
        "asd_mm": [0.45, 0.40, 0.50, 0.44, 0.38, 0.47],
        "nmi": [0.70, 0.75, 0.68, 0.72, 0.66, 0.73],
    },
}


def make_rows(per_metric: dict[str, list], structure: str = "scar", scans=SCANS) -> list[dict]:
    rows = []
    for i, scan in enumerate(scans):
        patient, ablation = scan.split("_")
        row = {"scan": scan, "patient": patient, "ablation": ablation, "status": "ok"}
        row.update({f"{structure}_{m}": values[i] for m, values in per_metric.items()})
        rows.append(row)
    return rows


@pytest.fixture
def scar_rows() -> dict[str, list[dict]]:
    return {method: make_rows(values) for method, values in SCAR.items()}


@pytest.fixture
def tables(scar_rows) -> dict[str, dict]:
    la = {
        "SegNet": make_rows({"dsc": [0.91, 0.90, 0.93, 0.92, 0.90, 0.91], "jaccard": [0.84, 0.82, 0.87, 0.85, 0.82, 0.84],
                             "asd_mm": [1.6, 1.7, 1.5, 1.4, 1.8, 1.6], "nmi": [0.78, 0.77, 0.80, 0.79, 0.76, 0.78]}, "la"),
        "JAS-GAN": make_rows({"dsc": [0.95, 0.94, 0.96, 0.93, 0.95, 0.95], "jaccard": [0.90, 0.89, 0.92, 0.87, 0.90, 0.91],
                              "asd_mm": [0.9, 0.8, 1.0, 0.9, 0.95, 0.85], "nmi": [0.84, 0.83, 0.86, 0.82, 0.85, 0.84]}, "la"),
    }
    return {"la": compare_methods(la, "la"), "scar": compare_methods(scar_rows, "scar")}


def finite_pairs(a: list[float], b: list[float]) -> tuple[list[float], list[float]]:
    kept = [(x, y) for x, y in zip(a, b) if not (math.isnan(x) or math.isnan(y))]
    return [x for x, _ in kept], [y for _, y in kept]


def test_mean_sd_per_method_and_metric(scar_rows):
    table = compare_methods(scar_rows, "scar")
    assert list(table["methods"]) == ["2SD", "3D Unet", "JAS-GAN"] and table["metrics"] == list(PAPER_METRICS)
    assert table["n_scans"] == 6 and table["scans"] == list(SCANS)
    for method, values in SCAR.items():
        for metric in PAPER_METRICS:
            finite = [v for v in values[metric] if not math.isnan(v)]
            cell = table["methods"][method][metric]
            assert cell["mean"] == pytest.approx(statistics.mean(finite))
            assert cell["sd"] == pytest.approx(statistics.stdev(finite))
            assert cell["n"] == len(finite)
    assert table["methods"]["3D Unet"]["asd_mm"]["n"] == 5  # the NaN ASD is left out


def test_best_is_highest_dsc_and_a_lower_is_better_metric_does_not_decide(scar_rows):
    table = compare_methods(scar_rows, "scar")
    assert table["best"] == "JAS-GAN" and table["best_by"] == "dsc"
    asd_means = {m: c["asd_mm"]["mean"] for m, c in table["methods"].items()}
    assert min(asd_means, key=asd_means.get) == "2SD"  # lowest ASD, yet not the best by DSC
    assert "asd_mm" in LOWER_IS_BETTER and "dsc" not in LOWER_IS_BETTER
    assert compare_methods(scar_rows, "scar", best_by="asd_mm")["best"] == "2SD"  # lower is better
    assert compare_methods(scar_rows, "scar", best_by="nmi")["best"] == "JAS-GAN"
    best = table["methods"]["JAS-GAN"]["dsc"]
    assert math.isnan(best["p"]) and math.isnan(best["t"]) and best["n_pairs"] == 0 and not best["significant"]


def test_best_by_metric_outside_the_table_and_ties_keep_given_order(scar_rows):
    for method, rows in scar_rows.items():
        for row in rows:
            row["scar_hd95_mm"] = 2.0 if method == "3D Unet" else 3.0
    table = compare_methods(scar_rows, "scar", best_by="hd95_mm")
    assert table["best"] == "3D Unet" and "hd95_mm" not in table["methods"]["3D Unet"]
    same = {"B": make_rows({"dsc": [0.5] * 6}), "A": make_rows({"dsc": [0.5] * 6})}
    assert compare_methods(same, "scar", metrics=["dsc"])["best"] == "B"


def test_paired_t_test_matches_scipy_on_the_same_pairs(scar_rows):
    table = compare_methods(scar_rows, "scar")
    best = SCAR["JAS-GAN"]
    for method in ("2SD", "3D Unet"):
        for metric in PAPER_METRICS:
            a, b = finite_pairs(SCAR[method][metric], best[metric])
            expected = stats.ttest_rel(a, b)
            cell = table["methods"][method][metric]
            assert cell["n_pairs"] == len(a)
            assert cell["t"] == pytest.approx(expected.statistic) and cell["p"] == pytest.approx(expected.pvalue)
            assert cell["significant"] == (expected.pvalue < 0.05)
    unet, sd2 = table["methods"]["3D Unet"], table["methods"]["2SD"]
    assert unet["asd_mm"]["n_pairs"] == 5  # the scan with a NaN ASD is dropped from the pairs
    assert all(unet[m]["p"] < 0.05 and unet[m]["t"] < 0 for m in ("dsc", "jaccard", "nmi"))
    assert unet["asd_mm"]["p"] < 0.05 and unet["asd_mm"]["t"] > 0  # 3D Unet's ASD is higher (worse)
    assert all(sd2[m]["p"] >= 0.05 for m in ("dsc", "jaccard", "nmi"))


def test_t_statistic_by_hand_on_a_tiny_example():
    best, other = [0.8, 0.9, 0.7, NAN], [0.7, 0.85, 0.5, 0.9]
    result = paired_t_test(other, best)
    diffs = [-0.1, -0.05, -0.2]  # the NaN pair is dropped
    by_hand = statistics.mean(diffs) / (statistics.stdev(diffs) / math.sqrt(3))
    assert result["n_pairs"] == 3
    assert result["t"] == pytest.approx(by_hand) and result["t"] == pytest.approx(-2.6458, abs=1e-4)
    assert result["p"] == pytest.approx(stats.ttest_rel(other[:3], best[:3]).pvalue)
    assert 0.05 < result["p"] < 0.2


def test_t_test_undefined_cases_give_nan():
    one_pair = paired_t_test([0.5, NAN, 0.7], [0.6, 0.6, NAN])
    assert one_pair["n_pairs"] == 1 and math.isnan(one_pair["t"]) and math.isnan(one_pair["p"])
    equal = paired_t_test([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert equal["n_pairs"] == 3 and math.isnan(equal["p"])
    rows = {"A": make_rows({"dsc": [0.5] * 6}), "B": make_rows({"dsc": [0.5] * 6})}
    cell = compare_methods(rows, "scar", metrics=["dsc"])["methods"]["B"]["dsc"]
    assert math.isnan(cell["p"]) and not cell["significant"]
    with pytest.raises(ValueError):
        paired_t_test([1.0, 2.0], [1.0])


def test_rows_are_paired_by_scan_not_by_position(scar_rows):
    expected = compare_methods(scar_rows, "scar")
    shuffled = {m: list(rows) for m, rows in scar_rows.items()}
    random.Random(0).shuffle(shuffled["3D Unet"])
    assert [r["scan"] for r in shuffled["3D Unet"]] != list(SCANS)
    got = compare_methods(shuffled, "scar")
    for metric in PAPER_METRICS:
        assert got["methods"]["3D Unet"][metric]["p"] == pytest.approx(expected["methods"]["3D Unet"][metric]["p"])


def test_numeric_strings_and_empty_strings_are_accepted(scar_rows):
    expected = compare_methods(scar_rows, "scar")
    as_text = {m: [{k: ("" if isinstance(v, float) and math.isnan(v) else str(v)) for k, v in r.items()}
                   for r in rows] for m, rows in scar_rows.items()}
    got = compare_methods(as_text, "scar")
    for method in SCAR:
        for metric in PAPER_METRICS:
            for key in ("mean", "sd", "n", "p"):
                assert got["methods"][method][metric][key] == pytest.approx(
                    expected["methods"][method][metric][key], nan_ok=True)
    as_text["2SD"][0]["scar_nmi"] = "high"
    with pytest.raises(ValueError, match=r"2SD.*P001_pre.*scar_nmi.*'high'"):
        compare_methods(as_text, "scar")


def test_unequal_scan_sets_raise_naming_the_method(scar_rows):
    scar_rows["3D Unet"] = scar_rows["3D Unet"][:-1]
    with pytest.raises(ValueError, match=r"'3D Unet' lacks 1 scan.*'P003_post'.*same test split"):
        compare_methods(scar_rows, "scar")
    extra = [f"X{i:02d}_post" for i in range(8)]
    many = {"A": make_rows({"dsc": [0.5] * 8}, scans=extra), "B": make_rows({"dsc": [0.5] * 2}, scans=extra[:2])}
    with pytest.raises(ValueError, match=r"'B' lacks 6 scan.*'X06_post' and 1 more") as info:
        compare_methods(many, "scar", metrics=["dsc"])
    assert "X07" not in str(info.value)


def test_failed_scans_and_bad_input_raise(scar_rows):
    scar_rows["2SD"][2]["status"] = "failed"
    with pytest.raises(ValueError, match=r"'2SD' failed on 1 scan.*'P002_pre'"):
        compare_methods(scar_rows, "scar")
    scar_rows["2SD"][2]["status"] = "ok"
    scar_rows["JAS-GAN"].append(dict(scar_rows["JAS-GAN"][0]))
    with pytest.raises(ValueError, match=r"'JAS-GAN'.*'P001_pre' appears more than once"):
        compare_methods(scar_rows, "scar")
    scar_rows["JAS-GAN"].pop()
    with pytest.raises(ValueError, match="'2SD', scan 'P001_pre': no column 'la_dsc'"):
        compare_methods(scar_rows, "la")
    with pytest.raises(ValueError, match="structure"):
        compare_methods(scar_rows, "wall")
    with pytest.raises(ValueError, match="metrics"):
        compare_methods(scar_rows, "scar", metrics=["dice"])
    with pytest.raises(ValueError, match="no methods"):
        compare_methods({}, "scar")
    all_nan = {"A": make_rows({"dsc": [NAN] * 6})}
    with pytest.raises(ValueError, match="finite mean"):
        compare_methods(all_nan, "scar", metrics=["dsc"])


def test_format_value_like_the_paper():
    assert [format_value(v) for v in (0.946, 0.015, 0.46, 1.61, 22.3, 7.014, 9.996, 1234.4)] == [
        "0.946", "0.015", "0.460", "1.61", "22.3", "7.01", "10.0", "1234"]
    assert format_value(NAN) == "n/a"


def test_markdown_table_layout_and_marks(tables):
    text = format_table(tables["scar"])
    lines = text.splitlines()
    assert lines[0].startswith("Table V layout: scar segmentation, mean ± SD over 6 scans; * p < 0.05")
    assert "paired t-test vs JAS-GAN" in lines[0]
    assert [c.strip() for c in lines[2].strip("|").split("|")] == ["Method", "DSC", "JI", "ASD (mm)", "NMI"]
    assert set(lines[3]) <= {"|", "-"}
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:7]]
    assert [r[0] for r in body] == ["2SD", "3D Unet", "JAS-GAN (best)"]
    sd2, unet, best = body
    assert all("±" in c for r in body for c in r[1:])
    assert all(not c.endswith("*") for c in sd2[1:])  # p >= 0.05 on every metric
    assert all(c.endswith("*") for c in unet[1:])  # p < 0.05 on every metric
    assert all(not c.endswith("*") for c in best[1:])
    cell = tables["scar"]["methods"]["JAS-GAN"]["dsc"]
    assert best[1] == f"{cell['mean']:.3f} ± {cell['sd']:.3f}"
    assert "ASD (mm): 3D Unet 5" in text  # the note on the NaN ASD
    assert len({len(line) for line in lines[2:7]}) == 1  # padded columns, readable in a terminal
    la = format_table(tables["la"])
    assert la.startswith("Table IV layout: LA segmentation, mean ± SD over 6 scans")
    assert "| JAS-GAN (best) |" in la and "Scans with a defined value" not in la


def test_write_comparison_files_parse(tmp_path, tables):
    paths = write_comparison(tables, tmp_path / "out")
    assert [p.name for p in paths] == ["comparison.md", "comparison.json", "comparison.csv"]
    assert all(p.is_file() for p in paths)
    markdown = paths[0].read_text(encoding="utf-8")
    assert "Table IV layout" in markdown and "Table V layout" in markdown

    def reject(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    document = json.loads(paths[1].read_text(encoding="utf-8"), parse_constant=reject)
    assert document["scar"]["best"] == "JAS-GAN" and document["la"]["n_scans"] == 6
    assert document["scar"]["methods"]["JAS-GAN"]["dsc"]["p"] is None  # NaN -> null
    expected_p = tables["scar"]["methods"]["3D Unet"]["dsc"]["p"]
    assert document["scar"]["methods"]["3D Unet"]["dsc"]["p"] == pytest.approx(expected_p)

    rows = list(csv.DictReader(io.StringIO(paths[2].read_text(encoding="utf-8"))))
    assert len(rows) == (2 + 3) * len(PAPER_METRICS) and tuple(rows[0]) == CSV_FIELDS
    unet = next(r for r in rows if r["structure"] == "scar" and r["method"] == "3D Unet" and r["metric"] == "asd_mm")
    assert unet["n"] == "5" and unet["n_pairs"] == "5" and float(unet["p"]) == pytest.approx(
        tables["scar"]["methods"]["3D Unet"]["asd_mm"]["p"], rel=1e-5)
    best = next(r for r in rows if r["method"] == "JAS-GAN" and r["structure"] == "scar" and r["metric"] == "dsc")
    assert best["best"] == "True" and best["p"] == ""
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_read_metrics_csv_round_trip(tmp_path, scar_rows):
    path = tmp_path / "metrics.csv"
    stages = ["found", "crop", "found", "none", "found", "found"]  # what stage 1 did, as evaluation writes it
    qc = ["ok", "LA volume 2460 ml outside 25-250 ml; LA touches the image border (left)", "", "ok", "ok", "ok"]
    written = [dict(r, stage1=stage, roi_recall=1.0, qc=check, qc_score=0.2)  # qc: evaluation's quality check text
               for r, stage, check in zip(scar_rows["3D Unet"], stages, qc)]
    path.write_text(rows_to_csv(written), encoding="utf-8")
    rows = read_metrics_csv(path)
    assert [r["scan"] for r in rows] == list(SCANS)
    assert [r["stage1"] for r in rows] == stages and rows[0]["roi_recall"] == 1.0
    assert [r["qc"] for r in rows] == qc and rows[0]["qc_score"] == 0.2
    for got, want in zip(rows, scar_rows["3D Unet"]):
        assert (got["patient"], got["ablation"], got["status"]) == (want["patient"], want["ablation"], "ok")
        for metric in PAPER_METRICS:
            assert got[f"scar_{metric}"] == pytest.approx(want[f"scar_{metric}"], nan_ok=True)
    assert math.isnan(rows[1]["scar_asd_mm"]) and isinstance(rows[0]["scar_dsc"], float)
    from_files = dict(scar_rows, **{"3D Unet": rows})
    table = compare_methods(from_files, "scar")
    assert table["methods"]["3D Unet"]["asd_mm"]["n_pairs"] == 5 and table["best"] == "JAS-GAN"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty metrics file"),
        ("patient,scar_dsc\nP1,0.5\n", "no 'scan' column"),
        ("scan,scar_dsc\nP1_pre,0.5\nP1_post,abc\n", r"line 3, column 'scar_dsc' \(scan 'P1_post'\): 'abc'"),
        ("scan,scar_dsc\nP1_pre,0.5,0.7\n", "line 2 has 3 fields, the header has 2"),
        ("scan,scar_dsc\nP1_pre,0.5\nP1_pre,0.6\n", "line 3: scan 'P1_pre' repeats line 2"),
        ("scan,scar_dsc\n,0.5\n", "line 2: empty scan"),
        ("scan,scar_dsc,scar_dsc\nP1,0.5,0.5\n", "repeated column"),
        ("scan,scar_dsc\n", "no case rows"),
    ],
)
def test_read_metrics_csv_errors_name_the_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "metrics.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DatasetError, match=problem) as info:
        read_metrics_csv(path)
    assert str(info.value).startswith(str(path))


def test_read_metrics_csv_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="metrics file not found") as info:
        read_metrics_csv(tmp_path / "nope" / "metrics.csv")
    assert "nope" in info.value.path


def test_paired_t_test_of_a_constant_non_zero_difference_is_infinite():
    from bundle.evaluation.comparison import paired_t_test

    out = paired_t_test([0.8, 0.7, 0.6], [0.9, 0.8, 0.7])
    assert out["t"] == float("-inf") and out["p"] == 0.0 and out["n_pairs"] == 3
    assert math.isnan(paired_t_test([0.1 + 0.2, 0.5], [0.3, 0.5])["p"])  # equal up to rounding: nothing to test
