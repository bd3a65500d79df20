"""bundle.evaluation.baselines: the classical scar rules, their values on the real CARMA crop, and the batch run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.data.io import read_image, same_geometry
from bundle.data.layouts import load_case, write_dataset
from bundle.data.predictions import PREDICTION_KIND, read_prediction, write_prediction
from bundle.data.toolkit import kmeans_scar, toolkit_wall
from bundle.data.wall import derived_wall
from bundle.evaluation.baselines import (
    DEFAULT_METHODS,
    METHODS,
    SD_DDOF,
    case_regions,
    check_methods,
    iir_scar,
    la_regions,
    otsu_scar,
    pool_statistics,
    run_baselines,
    scar_masks,
    sd_scar,
)
from bundle.ownership import claim_folder
from bundle.planning.split import split_records
from bundle.quantification.burden import quantify

CARMA_FILES = ("autoscar-data.nrrd", "autoscar-endo.nrrd", "autoscar-wall.nrrd",
               "baseline-CMRToolkitAutomaticLeftAtrialScarTest.nrrd")
# README of the CARMA fixtures: method -> (scar % of wall, Dice against the toolkit's scar)
CARMA_README = {"2sd": (16.6, 0.961), "3sd": (9.3, 0.756), "otsu": (36.1, 0.596),
                "iir1.2": (12.2, 0.888), "iir1.32": (5.4, 0.524), "kmeans": (15.3, 1.0)}
CARMA_VOXELS = {"2sd": 2284, "3sd": 1285, "otsu": 4983, "iir1.2": 1686, "iir1.32": 750, "kmeans": 2113}


def _row_mask(shape: tuple[int, ...], row: int, n: int) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[0, row, :n] = True
    return mask


def _two_rows(pool_values: list[float], wall_values: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (1, 3, n) image: pool in row 0, wall in row 1, an untouched bright row 2 (never scar)."""
    n = max(len(pool_values), len(wall_values))
    image = np.full((1, 3, n), 1000.0, np.float32)
    image[0, 0, : len(pool_values)] = pool_values
    image[0, 1, : len(wall_values)] = wall_values
    return image, _row_mask(image.shape, 0, len(pool_values)), _row_mask(image.shape, 1, len(wall_values))


# ------------------------------------------------------------------------------------- the rules


def test_sd_rule_uses_sample_sd_and_strict_comparison():
    # pool 8, 10, 12: mean 10, sample SD 2 (population SD 1.63) -> thresholds 14 (2 SD) and 16 (3 SD)
    image, pool, wall = _two_rows([8, 10, 12], [14, 14.5, 15, 16, 17])
    assert SD_DDOF == 1 and pool_statistics(image, pool) == (10.0, 2.0)
    assert sd_scar(image, pool, wall, 2)[0, 1].tolist() == [False, True, True, True, True]
    assert METHODS["2sd"](image, pool, wall)[0, 1].tolist() == [False, True, True, True, True]
    assert METHODS["3sd"](image, pool, wall)[0, 1].tolist() == [False, False, False, False, True]
    for name in DEFAULT_METHODS:
        scar = METHODS[name](image, pool, wall)
        assert scar.dtype == bool and scar.shape == image.shape and not (scar & ~wall).any()


def test_iir_rule_divides_by_the_pool_mean():
    image, pool, wall = _two_rows([90, 110], [119, 120, 121, 131, 132, 133])  # pool mean 100
    assert iir_scar(image, pool, wall, 1.2)[0, 1].tolist() == [False, False, True, True, True, True]
    assert METHODS["iir1.2"](image, pool, wall)[0, 1].tolist() == [False, False, True, True, True, True]
    assert METHODS["iir1.32"](image, pool, wall)[0, 1].tolist() == [False] * 5 + [True]
    dark, pool, wall = _two_rows([0, 0], [5, 6])
    with pytest.raises(ValueError, match="positive blood-pool mean"):
        METHODS["iir1.2"](dark, pool, wall)


def test_otsu_rule_splits_the_wall_intensities():
    image, pool, wall = _two_rows([100], [10, 12, 10, 50, 52, 50])
    assert otsu_scar(image, pool, wall)[0, 1].tolist() == [False] * 3 + [True] * 3
    flat, pool, wall = _two_rows([100], [30, 30, 30])
    assert not otsu_scar(flat, pool, wall).any()  # constant wall: threshold = that intensity


def test_kmeans_is_the_toolkit_rule():
    rng = np.random.default_rng(0)
    image = rng.normal(100, 20, (2, 8, 8)).astype(np.float32)
    pool = np.zeros(image.shape, bool)
    pool[:, 2:6, 2:6] = True
    wall = np.zeros(image.shape, bool)
    wall[:, 1:7, 1:7] = True
    wall &= ~pool
    np.testing.assert_array_equal(METHODS["kmeans"](image, pool, wall), kmeans_scar(image, pool, wall))


def test_empty_wall_or_pool_gives_no_scar_and_bad_input_is_an_error():
    image, pool, wall = _two_rows([8, 10, 12], [40, 50, 60])
    none = np.zeros(image.shape, bool)
    for name in DEFAULT_METHODS:
        assert METHODS[name](image, pool, wall).any(), name
        assert not METHODS[name](image, pool, none).any(), name
        assert not METHODS[name](image, none, wall).any(), name
        with pytest.raises(ValueError, match="shapes differ"):
            METHODS[name](image, pool[..., :2], wall)
    one = _row_mask(image.shape, 0, 1)
    assert not METHODS["2sd"](image, one, wall).any()  # one pool voxel: no sample SD
    bad = image.copy()
    bad[0, 1, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        METHODS["2sd"](bad, pool, wall)


def test_method_names_are_checked():
    assert DEFAULT_METHODS == ("2sd", "3sd", "otsu", "iir1.2", "iir1.32", "kmeans")
    assert check_methods("otsu, 2sd,otsu") == ("otsu", "2sd")
    assert check_methods(["iir1.32"]) == ("iir1.32",)
    with pytest.raises(ValueError, match=r"'4sd'.*known methods: 2sd, 3sd, otsu, iir1.2, iir1.32, kmeans"):
        check_methods(["2sd", "4sd"])
    with pytest.raises(ValueError, match="no baseline method"):
        check_methods("")


# ---------------------------------------------------------------------------------- CARMA crop


@pytest.fixture(scope="module")
def carma(carma_dir):
    image, endo, wall, toolkit = (sitk.GetArrayFromImage(read_image(carma_dir / name)) for name in CARMA_FILES)
    endo, wall, toolkit = endo > 0, wall > 0, toolkit > 0
    return image, endo, wall, toolkit, scar_masks(image, endo, wall)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_carma_pool_and_wall_statistics(carma):
    image, endo, wall, _, _ = carma
    mean, sd = pool_statistics(image, endo)
    assert (round(mean, 1), round(sd, 1)) == (204.2, 16.6)
    assert round(float(image[wall].astype(np.float64).mean()), 1) == 211.4


@pytest.mark.parametrize("name", list(CARMA_README))
def test_carma_scar_percent_and_dice_match_the_readme(carma, name):
    _, _, wall, toolkit, scars = carma
    scar = scars[name]
    percent, dice = CARMA_README[name]
    assert not (scar & ~wall).any()
    assert int(scar.sum()) == CARMA_VOXELS[name]
    assert round(100.0 * scar.sum() / wall.sum(), 1) == percent
    assert round(_dice(scar, toolkit), 3) == dice


def test_carma_values_do_not_depend_on_sd_or_comparison_convention(carma):
    image, endo, wall, _, scars = carma
    pool, values = image[endo].astype(np.float64), image.astype(np.float64)
    for name, n in (("2sd", 2), ("3sd", 3)):
        for ddof in (0, 1):
            threshold = pool.mean() + n * pool.std(ddof=ddof)
            np.testing.assert_array_equal(wall & (values > threshold), scars[name])
            np.testing.assert_array_equal(wall & (values >= threshold), scars[name])
    np.testing.assert_array_equal(wall & (values / pool.mean() >= 1.2), scars["iir1.2"])


# ----------------------------------------------------------------------------------- batch runs


@pytest.fixture(scope="module")
def batch(tiny_dataset, tmp_path_factory):
    root, plan = tiny_dataset
    out = tmp_path_factory.mktemp("baselines")
    rows = run_baselines(root, "datalist", root.parent / "tiny.json", out)
    return root, plan, out, rows


def test_batch_writes_masks_on_the_image_grid_and_reports(batch):
    root, plan, out, rows = batch
    test_scans = plan["split"]["test"]
    records = {r["scan"]: r for r in split_records(plan, "test", root, "datalist")}
    assert list(rows) == list(DEFAULT_METHODS)
    for name in DEFAULT_METHODS:
        assert [r["scan"] for r in rows[name]] == test_scans
        assert all(r["status"] == "ok" for r in rows[name])
        report = json.loads((out / name / "report.json").read_text())
        assert report["n_scans"] == len(test_scans) and report["n_failed"] == 0
        assert report["meta"]["method"] == name and report["meta"]["wall_sources"] == ["derived"]
        assert (out / name / "report.csv").read_text().splitlines()[0].startswith("scan,status,la_ml")
        for row in rows[name]:
            scan = row["scan"]
            image = read_image(records[scan]["image"])
            for file in ("la.nii.gz", "scar.nii.gz"):
                mask = read_image(out / name / scan / file)
                assert mask.GetSize() == image.GetSize() and same_geometry(image, mask)
                assert mask.GetSpacing() == image.GetSpacing() and mask.GetOrigin() == image.GetOrigin()
                assert mask.GetDirection() == image.GetDirection()
            label = read_prediction(out / name, scan, image, records[scan]["image"])
            case = load_case(records[scan])
            la, scar = label > 0, label == 2
            np.testing.assert_array_equal(la, case.label > 0)  # datalist: the LA whose wall was used
            assert not (scar & ~derived_wall(la, case.spacing)).any()
            expected = quantify(label, case)
            assert {k: row[k] for k in expected} == pytest.approx(expected)
            assert report["scans"][test_scans.index(scan)]["scar_ml"] == pytest.approx(row["scar_ml"])
    assert any(r["scar_ml"] > 0 for r in rows["otsu"])


def test_case_regions_prefer_the_given_cavity_and_wall(batch):
    root, plan, _, _ = batch
    case = load_case(split_records(plan, "test", root, "datalist")[0])
    la, pool, wall, source = case_regions(case)
    assert source == "derived" and not (pool & wall).any()
    np.testing.assert_array_equal(pool | wall, case.label > 0)
    cavity = np.zeros(la.shape, bool)
    cavity[:, 20:40, 20:40] = True
    given = np.zeros(la.shape, bool)
    given[:, 18:42, 18:42] = True
    case.cavity, case.wall = cavity, given & ~cavity
    la, pool, wall, source = case_regions(case)
    assert source == "given"
    np.testing.assert_array_equal(pool, cavity)
    np.testing.assert_array_equal(wall, given & ~cavity)
    np.testing.assert_array_equal(la, given)
    predicted = np.zeros(la.shape, bool)
    predicted[:, 10:30, 10:30] = True
    la, pool, wall, source = case_regions(case, predicted)
    assert source == "predicted"
    np.testing.assert_array_equal(la, predicted)
    np.testing.assert_array_equal((pool, wall), la_regions(predicted, case))


def test_given_cavity_and_wall_of_a_miccai_dataset_are_used(batch, tmp_path):
    root, plan, _, _ = batch
    cases = [load_case(r) for r in split_records(plan, "test", root, "datalist")]
    for case in cases:  # cavity = the phantom's LA minus its derived wall; wall = the toolkit's dilation
        case.cavity = la_regions(case.label > 0, case)[0]
        case.wall = toolkit_wall(case.cavity)
        assert (case.wall != la_regions(case.cavity | case.wall, case)[1]).any()  # not the derived wall
    write_dataset(cases, tmp_path / "miccai", "miccai2018")
    out = tmp_path / "out"
    rows = run_baselines(tmp_path / "miccai", "miccai2018", root.parent / "tiny.json", out, methods="2sd")
    assert [r["status"] for r in rows["2sd"]] == ["ok", "ok"]
    assert json.loads((out / "2sd" / "report.json").read_text())["meta"]["wall_sources"] == ["given"]
    for case in cases:
        reference = case.to_image(case.image)
        label = read_prediction(out / "2sd", case.scan, reference, case.scan)
        np.testing.assert_array_equal(label > 0, case.cavity | case.wall)
        np.testing.assert_array_equal(label == 2, sd_scar(case.image, case.cavity, case.wall, 2))


def test_unreadable_scan_fails_in_every_report_and_the_others_are_written(batch, tmp_path):
    root, plan, _, _ = batch
    data = tmp_path / "phantom"
    shutil.copytree(root, data)
    bad, good = plan["split"]["test"][1], plan["split"]["test"][0]
    image = data / "imagesTr" / f"{bad}.nii.gz"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    out = tmp_path / "out"
    rows = run_baselines(data, "datalist", root.parent / "tiny.json", out, methods="2sd,otsu")
    assert list(rows) == ["2sd", "otsu"]
    for name in ("2sd", "otsu"):
        status = {r["scan"]: r["status"] for r in rows[name]}
        assert status == {good: "ok", bad: "failed"}
        failed = next(r for r in rows[name] if r["scan"] == bad)
        assert str(image) in failed["error"]
        assert (out / name / good / "scar.nii.gz").is_file() and not (out / name / bad).exists()
        report = json.loads((out / name / "report.json").read_text())
        assert report["n_failed"] == 1 and report["n_scans"] == 2
        assert ",failed," in (out / name / "report.csv").read_text()


def test_la_from_a_prediction_folder(batch, tmp_path):
    root, plan, _, _ = batch
    have, missing = plan["split"]["test"]
    record = {r["scan"]: r for r in split_records(plan, "test", root, "datalist")}[have]
    case = load_case(record)
    reference = read_image(record["image"])
    predicted = np.zeros(case.image.shape, bool)
    predicted[:, 16:48, 16:48] = True  # a box LA, unlike the phantom's
    pred_dir = tmp_path / "pred"
    write_prediction(pred_dir, have, predicted, np.zeros_like(predicted), reference)
    out = tmp_path / "out"
    claim_folder(out / "3sd", PREDICTION_KIND)  # an earlier run's folder, with an older result of the scan that now fails
    (out / "3sd" / missing).mkdir()
    rows = run_baselines(root, "datalist", root.parent / "tiny.json", out, methods=["3sd", "iir1.2"],
                         la_from=pred_dir)
    pool, wall = la_regions(predicted, case)
    for name in ("3sd", "iir1.2"):
        status = {r["scan"]: r["status"] for r in rows[name]}
        assert status == {have: "ok", missing: "failed"}
        assert "prediction of scan" in next(r["error"] for r in rows[name] if r["scan"] == missing)
        assert not (out / name / missing).exists()
        label = read_prediction(out / name, have, reference, record["image"])
        np.testing.assert_array_equal(label > 0, predicted)
        np.testing.assert_array_equal(label == 2, METHODS[name](case.image, pool, wall))
        meta = json.loads((out / name / "report.json").read_text())["meta"]
        assert meta["la_from"] == str(pred_dir) and meta["wall_sources"] == ["predicted"]


def test_cli_prints_a_line_per_method(batch, tmp_path, capsys):
    root, _, _, _ = batch
    from bundle.cli import baselines as cli

    cli.main(str(root), str(root.parent / "tiny.json"), out=str(tmp_path), methods="otsu,iir1.32",
             log_level="WARNING")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["otsu", "iir1.32"]
    assert all("2 scans written, 0 failed" in line for line in lines)
