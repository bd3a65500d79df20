"""bundle.evaluation.evaluate, bundle.quantification.burden.quantify and the method comparison on prediction folders."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import MICCAI_SPACING, REPO
from scipy import stats

from bundle.data.case import Case
from bundle.data.layouts import load_case, read_dataset
from bundle.data.phantom.dataset import scan_families
from bundle.data.predictions import write_prediction, write_report
from bundle.evaluation.comparison import compare_folders, method_slug, read_metrics_csv
from bundle.evaluation.evaluate import METRIC_COLUMNS, agreement, evaluate_case, evaluate_predictions, extreme_cases
from bundle.quantification.burden import quantify

SPACING = MICCAI_SPACING
VOXEL_ML = float(np.prod(MICCAI_SPACING)) / 1000


def strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{path} holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def hand_case() -> tuple[np.ndarray, int, int, int]:
    """A 3-slice LA box of 20 x 30 voxels; at 0.625 mm the wall is 4 voxels wide (2.5 mm), so per slice the
    wall is 20 * 30 - 12 * 22 = 336 voxels; 100 scar voxels lie in the wall band along x = 0..3 of one slice."""
    label = np.zeros((5, 40, 32), np.uint8)
    label[1:4, 5:35, 6:26] = 1
    label[2, 5:30, 6:10] = 2
    return label, 3 * 600, 3 * 336, 100


def test_scar_percentage_of_a_hand_built_case():
    label, n_la, n_wall, n_scar = hand_case()
    case = Case(image=np.zeros(label.shape, np.float32), label=label, spacing=SPACING)
    values = quantify(label, case)
    assert values["la_ml"] == pytest.approx(n_la * VOXEL_ML)
    assert values["wall_ml"] == pytest.approx(n_wall * VOXEL_ML)
    assert values["scar_ml"] == pytest.approx(n_scar * VOXEL_ML)
    assert values["scar_percent"] == pytest.approx(100 * 100 / 1008)  # 9.92 %


def test_scar_percentage_does_not_depend_on_how_the_axes_are_stored():
    label, *_ = hand_case()
    axial = sitk.GetImageFromArray(label)
    axial.SetSpacing(SPACING)
    for code in ("RAS", "PSL", "SLP"):
        stored = sitk.DICOMOrient(axial, code)
        values = quantify(sitk.GetArrayFromImage(stored), stored)
        assert values == pytest.approx(quantify(label, axial)), code


def test_the_wall_is_peeled_in_the_axial_plane_whatever_the_stored_axis_order():
    from bundle.quantification.burden import axial_wall

    label, _, n_wall, _ = hand_case()
    axial = sitk.GetImageFromArray(label)
    axial.SetSpacing(SPACING)
    wall = axial_wall(label > 0, axial)
    assert wall.sum() == n_wall
    for code in ("PSL", "SLP", "RAS"):
        stored = sitk.DICOMOrient(axial, code)
        turned_wall = axial_wall(sitk.GetArrayFromImage(stored) > 0, stored)
        back = sitk.GetImageFromArray(turned_wall.astype(np.uint8))
        back.CopyInformation(stored)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.DICOMOrient(back, "LPS")) > 0, wall)


def test_evaluate_case_on_hand_built_masks():
    label, *_ = hand_case()
    pred = label.copy()
    pred[2, 30:35, 6:10] = 2  # 20 more scar voxels in the wall: scar DSC = 200 / 220
    case = Case(image=np.zeros(label.shape, np.float32), label=label, spacing=SPACING)
    row = evaluate_case(label, pred, case)
    assert row["la_dsc"] == 1.0 and row["la_asd_mm"] == 0.0 and row["la_osr"] == 0.0
    assert row["scar_dsc"] == pytest.approx(200 / 220) and row["scar_jaccard"] == pytest.approx(100 / 120)
    assert row["scar_osr"] == pytest.approx(0.2) and row["scar_usr"] == 0.0
    assert row["gt_scar_percent"] == pytest.approx(100 * 100 / 1008)
    assert row["pred_scar_percent"] == pytest.approx(100 * 120 / 1008)
    assert row["pred_scar_ml"] - row["gt_scar_ml"] == pytest.approx(20 * VOXEL_ML)


def test_the_cavity_is_scored_where_the_dataset_gives_one():
    """The 2018 challenge's labels are cavities: the predicted LA minus its derived wall and scar is scored against
    them; the truth's own LA (cavity dilated by the toolkit's 4-voxel wall) gives back its cavity."""
    from bundle.data.toolkit import toolkit_wall
    from bundle.data.wall import derived_cavity

    cavity = np.zeros((6, 40, 40), bool)
    cavity[1:5, 10:30, 12:28] = True
    la = cavity | toolkit_wall(cavity)
    label = la.astype(np.uint8)
    spacing = (0.625, 0.625, 2.5)
    np.testing.assert_array_equal(derived_cavity(label, spacing), cavity)
    case = Case(image=np.zeros(label.shape, np.float32), label=label, spacing=spacing, cavity=cavity)
    row = evaluate_case(label, label, case)
    assert row["cavity_dsc"] == 1.0 and row["cavity_hd95_mm"] == 0.0 and row["cavity_asd_vox"] == 0.0
    shifted = np.roll(label, 2, axis=2)  # the LA 2 voxels along x: so is its cavity, 14 of 16 columns shared
    row = evaluate_case(label, shifted, case)
    assert row["cavity_dsc"] == pytest.approx(14 / 16) and row["cavity_jaccard"] == pytest.approx(14 / 18)
    assert row["cavity_hd95_vox"] > 0 and row["cavity_hd95_mm"] == pytest.approx(0.625 * row["cavity_hd95_vox"])
    assert 0 < row["cavity_asd_vox"] <= 2 and 0 < row["cavity_asd_mm"] <= 2 * 0.625  # no point is 2 voxels off
    no_cavity = evaluate_case(label, label, Case(image=case.image, label=label, spacing=spacing))
    assert all(math.isnan(no_cavity[c]) for c in METRIC_COLUMNS if c.startswith("cavity_"))


def test_agreement_needs_enough_cases():
    rows = [{"gt_scar_ml": 1.0, "pred_scar_ml": 1.1, "gt_scar_percent": 10.0, "pred_scar_percent": 12.0,
             "ablation": "post"}] * 2
    out = agreement(rows)
    assert out["scar_volume"]["all"]["pearson"] is None and ">= 3" in out["scar_volume"]["all"]["pearson_error"]
    assert out["scar_percent"]["all"]["bland_altman"]["bias"] == pytest.approx(2.0)
    assert out["scar_percent"]["pre"]["n"] == 0 and out["scar_percent"]["pre"]["bland_altman"] is None
    flat = rows + [dict(rows[0])]
    assert agreement(flat)["scar_volume"]["post"]["pearson"] is None  # constant series: no correlation


def _write_predictions(records: list[dict], out: Path, skip: str | None = None) -> dict[str, np.ndarray]:
    """Predictions that differ from the truth by known amounts: scan i loses i slices of its scar."""
    labels = {}
    for i, record in enumerate(records):
        if record["scan"] == skip:
            continue
        case = load_case(record)
        pred = case.label.copy()
        z = np.flatnonzero((pred == 2).any(axis=(1, 2)))
        for k in z[:i]:
            pred[k][pred[k] == 2] = 1
        write_prediction(out, record["scan"], pred > 0, pred == 2, case.to_image(case.image))
        labels[record["scan"]] = pred
    return labels


def test_evaluate_predictions_writes_metrics_summary_and_plots(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    records = read_dataset(root, "datalist")
    missing = records[-1]["scan"]
    _write_predictions(records, tmp_path / "pred", skip=missing)
    summary = evaluate_predictions(tmp_path / "pred", records, tmp_path / "eval", meta={"model": "made up"})

    rows = read_metrics_csv(tmp_path / "eval" / "metrics.csv")
    assert [r["scan"] for r in rows] == [r["scan"] for r in records]
    assert rows[-1]["status"] == "failed" and "not found" in rows[-1]["error"] and missing in rows[-1]["error"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(set(METRIC_COLUMNS) <= set(r) for r in ok)
    assert ok[0]["la_dsc"] == 1.0 and ok[0]["scar_dsc"] == 1.0  # the first prediction is the truth
    assert all(r["la_dsc"] == 1.0 and r["scar_dsc"] <= 1.0 for r in ok)
    assert ok[-1]["scar_dsc"] < 1.0 and ok[-1]["pred_scar_ml"] < ok[-1]["gt_scar_ml"]

    saved = strict_json(tmp_path / "eval" / "summary.json")
    assert saved["n_cases"] == len(records) and saved["n_failed"] == 1 and missing in saved["failed"]
    assert saved["meta"]["model"] == "made up" and summary["n_failed"] == 1
    dsc = [r["scar_dsc"] for r in ok]  # metrics.csv keeps 6 significant digits
    assert saved["metrics"]["all"]["scar_dsc"]["mean"] == pytest.approx(np.mean(dsc), rel=1e-5)
    assert saved["metrics"]["all"]["scar_dsc"]["sd"] == pytest.approx(np.std(dsc, ddof=1), rel=1e-4)
    for group in ("pre", "post"):
        members = [r["scar_dsc"] for r in ok if r["ablation"] == group]
        assert saved["metrics"][group]["scar_dsc"]["n"] == len(members)
    r, _ = stats.pearsonr([x["gt_scar_percent"] for x in ok], [x["pred_scar_percent"] for x in ok])
    assert saved["agreement"]["scar_percent"]["all"]["pearson"]["r"] == pytest.approx(r, rel=1e-5)
    diff = [x["pred_scar_ml"] - x["gt_scar_ml"] for x in ok]
    assert saved["agreement"]["scar_volume"]["all"]["bland_altman"]["bias"] == pytest.approx(np.mean(diff), rel=1e-4)
    post = [x for x in ok if x["ablation"] == "post"]
    diff = [x["pred_scar_percent"] - x["gt_scar_percent"] for x in post]
    assert saved["agreement"]["scar_percent"]["post"]["n"] == len(post)
    assert saved["agreement"]["scar_percent"]["post"]["bland_altman"]["bias"] == pytest.approx(np.mean(diff), rel=1e-4)

    pngs = sorted(p.name for p in (tmp_path / "eval").glob("*.png"))
    extremes = extreme_cases(ok)
    assert pngs == sorted(["scar_percent.png", "scar_volume.png", f"overlay_best_{extremes['best']['scan']}.png",
                           f"overlay_worst_{extremes['worst']['scan']}.png"])
    assert extremes["worst"]["scar_dsc"] == min(dsc)
    for name in pngs:
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scar_dice_per_phantom_family(tiny_dataset, tmp_path):
    """``by_family``: each family's members with the mean LA and scar Dice of their scans, from the manifest."""
    root, _ = tiny_dataset
    records = read_dataset(root, "datalist")
    families = scan_families(root)
    assert set(families) == {r["scan"] for r in records}
    assert scan_families(tmp_path) == {}  # not a phantom folder: no families
    _write_predictions(records, tmp_path / "pred")
    summary = evaluate_predictions(tmp_path / "pred", records, tmp_path / "eval", plots=False, families=families)
    ok = {r["scan"]: r for r in read_metrics_csv(tmp_path / "eval" / "metrics.csv")}
    by_intensity = strict_json(tmp_path / "eval" / "summary.json")["by_family"]["intensity"]
    assert by_intensity == json.loads(json.dumps(summary["by_family"]["intensity"]))
    for member, values in by_intensity.items():
        scans = [s for s in ok if families[s]["intensity"] == member]
        assert values["cases"] == len(scans) == values["scar_dsc"]["n"]
        assert values["scar_dsc"]["mean"] == pytest.approx(np.mean([ok[s]["scar_dsc"] for s in scans]), rel=1e-5)
    assert sum(v["cases"] for v in by_intensity.values()) == len(records)
    assert "by_family" not in evaluate_predictions(tmp_path / "pred", records, tmp_path / "eval2", plots=False)


def test_scans_where_stage_1_found_no_la_are_scored_and_drawn_as_empty(tiny_dataset, tmp_path):
    """Every scan no_la (a barely trained localiser): scored as empty predictions, overlays drawn, nothing fails."""
    root, _ = tiny_dataset
    records = read_dataset(root, "datalist")[:2]
    write_report([{"scan": r["scan"], "status": "no_la", "stage1": "none"} for r in records], tmp_path / "pred")
    summary = evaluate_predictions(tmp_path / "pred", records, tmp_path / "eval")
    assert summary["n_failed"] == 0 and summary["metrics"]["all"]["la_dsc"]["mean"] == 0.0
    assert summary["no_la"] == [r["scan"] for r in records]
    assert len(list((tmp_path / "eval").glob("overlay_*.png"))) == 2


def test_scans_only_stage_2s_search_found_are_listed_apart_from_those_without_la(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    records = read_dataset(root, "datalist")[:3]
    _write_predictions(records[1:], tmp_path / "pred")
    write_report([{"scan": records[0]["scan"], "status": "no_la", "stage1": "none"},
                  {"scan": records[1]["scan"], "status": "ok", "stage1": "searched"},
                  {"scan": records[2]["scan"], "status": "ok", "stage1": "found"}], tmp_path / "pred")
    summary = evaluate_predictions(tmp_path / "pred", records, tmp_path / "eval", plots=False)
    assert summary["no_la"] == [records[0]["scan"]] and summary["searched"] == [records[1]["scan"]]
    assert summary["n_failed"] == 0 and summary["n_cases"] == 3


def test_a_prediction_on_another_grid_fails_that_case_only(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    records = read_dataset(root, "datalist")[:2]
    _write_predictions(records, tmp_path / "pred")
    bad = sitk.ReadImage(str(tmp_path / "pred" / records[0]["scan"] / "la.nii.gz"))
    bad.SetOrigin((5.0, 5.0, 5.0))
    sitk.WriteImage(bad, str(tmp_path / "pred" / records[0]["scan"] / "la.nii.gz"))
    evaluate_predictions(tmp_path / "pred", records, tmp_path / "eval", plots=False)
    rows = read_metrics_csv(tmp_path / "eval" / "metrics.csv")
    assert rows[0]["status"] == "failed" and "does not match the grid" in rows[0]["error"]
    assert "origin" in rows[0]["error"] and rows[1]["status"] == "ok"


def test_compare_folders_and_its_command(tiny_dataset, tmp_path):
    root, plan = tiny_dataset
    records = read_dataset(root, "datalist")
    _write_predictions(records, tmp_path / "good")
    _write_predictions(list(reversed(records)), tmp_path / "worse")  # other scans lose their scar slices
    methods = {"Good net": str(tmp_path / "good"), "Worse": str(tmp_path / "worse")}
    tables = compare_folders(methods, records, tmp_path / "cmp", la_methods=["Good net"])
    assert list(tables) == ["la", "scar"] and list(tables["la"]["methods"]) == ["Good net"]  # no cavity labels
    scar = tables["scar"]
    assert list(scar["methods"]) == ["Good net", "Worse"] and scar["n_scans"] == len(records)
    good = read_metrics_csv(tmp_path / "cmp" / method_slug("Good net") / "metrics.csv")
    worse = read_metrics_csv(tmp_path / "cmp" / "Worse" / "metrics.csv")
    best, other = ("Good net", "Worse") if np.mean([r["scar_dsc"] for r in good]) >= np.mean(
        [r["scar_dsc"] for r in worse]) else ("Worse", "Good net")
    assert scar["best"] == best
    a, b = ({r["scan"]: r["scar_dsc"] for r in rows} for rows in (good, worse))
    pairs = [(a[s], b[s]) if other == "Worse" else (b[s], a[s]) for s in a]
    expected = stats.ttest_rel([p[1] for p in pairs], [p[0] for p in pairs])
    p_value = scar["methods"][other]["dsc"]["p"]
    assert (math.isnan(p_value) and np.allclose(*zip(*pairs))) or p_value == pytest.approx(expected.pvalue)
    for name in ("comparison.md", "comparison.csv"):
        assert (tmp_path / "cmp" / name).is_file()
    assert (tmp_path / "cmp" / "osr_usr.png").read_bytes()[:4] == b"\x89PNG"
    strict_json(tmp_path / "cmp" / "comparison.json")
    with pytest.raises(ValueError, match="not among the compared methods"):
        compare_folders(methods, records, tmp_path / "cmp2", la_methods=["Other"])
    la_only = compare_folders(methods, records, tmp_path / "cmp3", scar_methods=["Worse"])
    assert list(la_only["la"]["methods"]) == ["Good net", "Worse"] and list(la_only["scar"]["methods"]) == ["Worse"]
    with pytest.raises(ValueError, match="neither an LA nor a scar method"):
        compare_folders(methods, records, tmp_path / "cmp4", la_methods=[], scar_methods=[])

    # the command line: a missing prediction folder fails that method's scans, and the comparison says so
    cmd = [sys.executable, "-m", "bundle.cli.compare", "--methods", json.dumps({**methods, "Empty": str(tmp_path / "none")}),
           "--dataset", str(root), "--plan", str(root.parent / "tiny.json"), "--split", "test",
           "--out", str(tmp_path / "cli"), "--la_methods", "Good net"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 2 and "method 'Empty' failed on" in run.stderr and "Traceback" not in run.stderr
    bad_json = subprocess.run([*cmd[:4], "{not json", *cmd[5:]], cwd=REPO, capture_output=True, text=True,
                              timeout=300, check=False)
    assert bad_json.returncode == 2 and "error: --methods must be a JSON object" in bad_json.stderr
    cmd[4] = json.dumps(methods)
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Table IV layout" in run.stdout and "Table V layout" in run.stdout and "| Good net" in run.stdout
    assert f"over {len(plan['split']['test'])} scans" in run.stdout


def test_a_cavity_dataset_gets_the_challenges_table(tmp_path):
    """On the 2018 challenge's layout (labels: cavities) evaluation scores the cavity and compare adds the
    challenge's table (Dice, Jaccard, HD95 and ASD in mm and voxels) for the LA methods."""
    from conftest import real_looking_dataset

    root = real_looking_dataset(tmp_path / "atria", "miccai2018", n_patients=2, profile="tiny")
    records = read_dataset(root, "miccai2018")
    _write_predictions(records, tmp_path / "truth")
    shifted = tmp_path / "shifted"
    for record in records:  # the LA two voxels along x
        case = load_case(record)
        pred = np.roll(case.label, 2, axis=2)
        write_prediction(shifted, record["scan"], pred > 0, pred == 2, case.to_image(case.image))
    summary = evaluate_predictions(tmp_path / "truth", records, tmp_path / "eval", plots=False)
    assert summary["cavity_scored"] and summary["metrics"]["all"]["cavity_dsc"]["mean"] > 0.97
    # the 2018 challenge has no scar labels (its default label set, none): scar is neither scored nor tabulated
    assert not summary["scar_scored"] and summary["metrics"]["all"]["scar_dsc"]["n"] == 0
    methods = {"Truth": str(tmp_path / "truth"), "Shifted": str(shifted)}
    tables = compare_folders(methods, records, tmp_path / "cmp")
    assert list(tables) == ["la", "cavity"]
    toolkit = [{**r, "scar_labels": "toolkit"} for r in records]  # with the toolkit's scar: scored
    assert evaluate_predictions(tmp_path / "truth", toolkit, tmp_path / "eval_toolkit", plots=False)["scar_scored"]
    cavity = tables["cavity"]
    assert cavity["best"] == "Truth" and cavity["metrics"] == ["dsc", "jaccard", "hd95_mm", "asd_mm", "hd95_vox",
                                                                "asd_vox"]
    assert cavity["methods"]["Shifted"]["dsc"]["mean"] < cavity["methods"]["Truth"]["dsc"]["mean"]
    assert cavity["methods"]["Shifted"]["hd95_vox"]["mean"] > 0
    markdown = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "2018 challenge layout: LA cavity segmentation" in markdown and "HD95 (voxels)" in markdown


def test_quantify_folder_and_its_command_on_hand_built_masks(tmp_path):
    from bundle.quantification.folder import quantify_folder

    label, n_la, n_wall, n_scar = hand_case()
    reference = sitk.GetImageFromArray(label.astype(np.float32))
    reference.SetSpacing(SPACING)
    reference.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
    write_prediction(tmp_path / "masks", "good", label > 0, label == 2, reference)
    write_prediction(tmp_path / "masks", "bad", label > 0, label == 2, reference)
    scar = sitk.GetImageFromArray(np.ones(label.shape, np.uint8))  # scar everywhere, outside the LA too
    scar.CopyInformation(reference)
    sitk.WriteImage(scar, str(tmp_path / "masks" / "bad" / "scar.nii.gz"))
    rows = quantify_folder(tmp_path / "masks", tmp_path / "report")
    assert [(r["scan"], r["status"]) for r in rows] == [("bad", "failed"), ("good", "ok")]
    assert "outside the predicted LA" in rows[0]["error"]
    assert rows[1]["scar_percent"] == pytest.approx(100 * n_scar / n_wall)
    assert rows[1]["la_ml"] == pytest.approx(n_la * VOXEL_ML)
    assert strict_json(tmp_path / "report" / "report.json")["n_failed"] == 1
    # the surface map and the quality check come with it: a 1.8 ml box is no adult LA
    assert rows[1]["qc"] == "LA volume 2 ml outside 25-250 ml"
    assert 0 < rows[1]["surface_scar_percent"] < 100
    assert all((tmp_path / "report" / "good" / name).is_file() for name in ("surface.vtk", "surface.ply", "surface.png"))
    assert not (tmp_path / "report" / "bad").exists()

    run = subprocess.run([sys.executable, "-m", "bundle.cli.quantify", "--predictions", str(tmp_path / "masks")], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "good: LA 1.76 ml, wall 0.98 ml, scar 0.10 ml = 9.9 % of the wall, " in run.stdout
    assert "% of the surface; qc: LA volume 2 ml outside 25-250 ml" in run.stdout
    assert "bad: failed" in run.stdout and (tmp_path / "masks" / "quantified" / "report.csv").is_file()
    missing = subprocess.run([sys.executable, "-m", "bundle.cli.quantify", "--predictions", str(tmp_path / "none")],
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 2 and "prediction folder not found" in missing.stderr
