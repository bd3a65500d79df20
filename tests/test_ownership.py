"""bundle.ownership and every writer that uses it: the bundle writes into, replaces and deletes only what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import real_looking_dataset, tree_snapshot

from bundle.data.predictions import (
    LA_FILE,
    PREDICTION_KIND,
    SCAR_FILE,
    drop_stale,
    write_prediction,
    write_report,
)
from bundle.errors import ForeignPathError
from bundle.ownership import (
    MARKER,
    PARENT_KIND,
    check_outside_inputs,
    check_replaceable_file,
    claim_folder,
    folder_kind,
    replace_folder,
    within_bundle_folder,
)


def _users_folder(path: Path) -> Path:
    """A folder of someone else's: a file and a sub-folder with a file."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    (path / "sub" / "scan.nrrd").write_bytes(b"\x00\x01")
    return path


def _masks() -> tuple[np.ndarray, np.ndarray, sitk.Image]:
    la = np.zeros((4, 8, 8), bool)
    la[1:3, 2:6, 2:6] = True
    return la, la & (np.arange(8) > 4), sitk.GetImageFromArray(la.astype(np.uint8))


# ------------------------------------------------------------------------------------------- the rules


def test_claiming_makes_and_marks_an_absent_folder_and_the_parents_it_made(tmp_path):
    out = claim_folder(tmp_path / "a" / "b" / "out", "models")
    assert out.is_dir() and folder_kind(out) == "models"
    assert folder_kind(tmp_path / "a") == PARENT_KIND and folder_kind(tmp_path / "a" / "b") == PARENT_KIND
    assert folder_kind(tmp_path) is None  # it existed before: not the bundle's
    marker = json.loads((out / MARKER).read_text())
    assert marker["written_by"] == "jasgan-bundle" and marker["kind"] == "models" and marker["version"]
    (out / "model.pt").write_bytes(b"weights")
    assert claim_folder(out, "models") == out and (out / "model.pt").read_bytes() == b"weights"  # its own: kept


def test_claiming_an_empty_folder_marks_it_and_a_users_folder_is_refused_untouched(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert folder_kind(claim_folder(empty, "training logs")) == "training logs"
    users = _users_folder(tmp_path / "users")
    before = tree_snapshot(users)
    with pytest.raises(ForeignPathError, match="did not write") as raised:
        claim_folder(users, "prediction folder")
    assert str(raised.value).startswith(str(users)) and tree_snapshot(users) == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ForeignPathError, match="is a file"):
        claim_folder(tmp_path / "file", "models")
    # what a library the bundle runs wrote just before (MONAI tracking's executed config) counts as empty
    tracked = tmp_path / "runs"
    tracked.mkdir()
    (tracked / "config_20261204_101010.json").write_text("{}")
    with pytest.raises(ForeignPathError):
        claim_folder(tracked, "training logs")
    assert folder_kind(claim_folder(tracked, "training logs", expected=["config_*.json"])) == "training logs"
    # a marker that is not the bundle's (someone's own JSON under that name) does not count
    (users / MARKER).write_text('{"written_by": "someone"}')
    with pytest.raises(ForeignPathError):
        claim_folder(users, "prediction folder")


def test_no_output_inside_an_input_the_bundle_did_not_write(tmp_path):
    dataset = _users_folder(tmp_path / "dataset")
    before = tree_snapshot(dataset)
    for inside in (dataset, dataset / "predictions", dataset / "sub" / "deeper"):
        with pytest.raises(ForeignPathError, match="inside the input"):
            claim_folder(inside, "prediction folder", inputs=[dataset])
    with pytest.raises(ForeignPathError, match="inside the input"):  # a datalist's dataset.json names its folder
        (dataset / "dataset.json").write_text("{}")
        before = tree_snapshot(dataset)
        check_outside_inputs(dataset / "plan.json", [dataset / "dataset.json"], "plan")
    assert tree_snapshot(dataset) == before
    assert claim_folder(tmp_path / "elsewhere", "prediction folder", inputs=[dataset, None]).is_dir()
    # inside an input the bundle wrote (its own prediction folder, its phantoms): allowed
    mine = claim_folder(tmp_path / "predictions", PREDICTION_KIND)
    assert within_bundle_folder(mine / "x") and claim_folder(mine / "quantified", "scar report", inputs=[mine]).is_dir()


def test_only_a_folder_of_the_same_kind_is_replaced(tmp_path):
    users = _users_folder(tmp_path / "users")
    before = tree_snapshot(users)
    with pytest.raises(ForeignPathError, match="not replaced"):
        replace_folder(users, "phantom dataset")
    assert tree_snapshot(users) == before
    models = claim_folder(tmp_path / "models", "models")
    (models / "model.pt").write_bytes(b"weights")
    with pytest.raises(ForeignPathError, match="as models, not as phantom dataset"):
        replace_folder(models, "phantom dataset")
    assert (models / "model.pt").is_file()
    phantoms = claim_folder(tmp_path / "phantoms", "phantom dataset")
    (phantoms / "old.nii.gz").write_bytes(b"old")
    assert replace_folder(phantoms, "phantom dataset") == phantoms
    assert [p.name for p in phantoms.iterdir()] == [MARKER]
    # a folder written before markers existed, recognised by its content
    legacy = _users_folder(tmp_path / "legacy")
    replace_folder(legacy, "phantom dataset", recognise=lambda p: (p / "notes.txt").is_file())
    assert [p.name for p in legacy.iterdir()] == [MARKER]


def test_a_file_is_replaced_only_when_the_bundle_wrote_it(tmp_path):
    mine, theirs = tmp_path / "plan.json", tmp_path / "theirs.json"
    mine.write_text('{"created_by": "bundle.planning"}')
    theirs.write_text('{"created_by": "someone"}')
    recognise = lambda p: json.loads(p.read_text()).get("created_by") == "bundle.planning"  # noqa: E731
    assert check_replaceable_file(tmp_path / "new.json", recognise, "plan") == tmp_path / "new.json"
    assert check_replaceable_file(mine, recognise, "plan") == mine
    with pytest.raises(ForeignPathError, match="not overwritten"):
        check_replaceable_file(theirs, recognise, "plan")
    with pytest.raises(ForeignPathError, match="is a folder"):
        check_replaceable_file(tmp_path, recognise, "plan")


# ------------------------------------------------------------------------------------------ the writers


def test_prediction_folders_refuse_what_the_bundle_did_not_write(tmp_path):
    la, scar, reference = _masks()
    users = _users_folder(tmp_path / "users")
    before = tree_snapshot(users)
    for write in (lambda: write_prediction(users, "a", la, scar, reference), lambda: write_report([], users)):
        with pytest.raises(ForeignPathError):
            write()
    assert tree_snapshot(users) == before

    out = tmp_path / "out"
    write_prediction(out, "a", la, scar, reference)
    assert folder_kind(out) == PREDICTION_KIND and (out / "a" / LA_FILE).is_file()
    write_prediction(out, "a", la, scar, reference)  # its own scan folder: replaced
    (out / "a" / "my_notes.txt").write_text("mine")  # a user's file in a scan folder: the folder is not replaced
    with pytest.raises(ForeignPathError, match="my_notes.txt"):
        write_prediction(out, "a", la, scar, reference)
    drop_stale(out, "a")  # nor dropped as stale
    assert (out / "a" / "my_notes.txt").read_text() == "mine" and (out / "a" / SCAR_FILE).is_file()


def test_inference_refuses_its_output_folder_before_segmenting_a_scan(tmp_path):
    from bundle.inference.segmenter import segment_scans

    class Untouchable:
        orientation, closing_radius_mm = "RAI", 0.0

        def segment(self, image):
            raise AssertionError("no scan may be segmented into a refused folder")

    scans = _users_folder(tmp_path / "scans")
    before = tree_snapshot(scans)
    record = {"scan": "scan", "image": str(scans / "sub" / "scan.nrrd")}
    for out in (scans, scans / "predictions", _users_folder(tmp_path / "mine")):
        with pytest.raises(ForeignPathError):
            segment_scans([record], Untouchable(), out, input_dir=scans)
    assert tree_snapshot(scans) == before


def test_quantify_writes_beside_another_tools_masks_only_where_told(tmp_path):
    from bundle.quantification.folder import quantify_folder

    la, scar, reference = _masks()
    theirs = tmp_path / "theirs"  # another tool's masks in the bundle's layout
    (theirs / "a").mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(la.astype(np.uint8)), str(theirs / "a" / LA_FILE))
    sitk.WriteImage(sitk.GetImageFromArray(scar.astype(np.uint8)), str(theirs / "a" / SCAR_FILE))
    before = tree_snapshot(theirs)
    with pytest.raises(ForeignPathError, match="--out"):
        quantify_folder(theirs, save_surface=False)
    with pytest.raises(ForeignPathError, match="inside the input"):
        quantify_folder(theirs, theirs / "report", save_surface=False)
    assert tree_snapshot(theirs) == before
    (row,) = quantify_folder(theirs, tmp_path / "report", save_surface=False)
    assert row["status"] == "ok" and (tmp_path / "report" / "report.csv").is_file()
    assert tree_snapshot(theirs) == before
    mine = tmp_path / "mine"  # the bundle's own prediction folder: the default report folder inside it
    write_prediction(mine, "a", la, scar, reference)
    quantify_folder(mine, save_surface=False)
    assert folder_kind(mine / "quantified") == "scar report"


def test_plans_go_to_a_new_file_or_over_a_plan_never_into_the_dataset(tiny_dataset, tmp_path):
    from bundle.planning.planner import save_plan
    from bundle.planning.run import plan_dataset

    _, plan = tiny_dataset
    root = real_looking_dataset(tmp_path / "data", "datalist", n_patients=1, profile="tiny")
    before = tree_snapshot(root)
    with pytest.raises(ForeignPathError, match="inside the input"):
        plan_dataset(root, "datalist", out=root / "plan.json")
    assert tree_snapshot(root) == before
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": true}')
    with pytest.raises(ForeignPathError, match="not a plan the bundle wrote"):
        save_plan(plan, notes)
    assert notes.read_text() == '{"mine": true}'
    save_plan(plan, tmp_path / "plan.json")
    save_plan(plan, tmp_path / "plan.json")  # over its own plan


def test_cache_and_training_folders_are_claimed(tiny_dataset, tmp_path):
    from bundle.preprocessing.cache import preprocessed
    from bundle.planning.split import split_records
    from bundle.training.prepare import claim_run_folders

    root, plan = tiny_dataset
    record = split_records(plan, "train", root, "datalist")[0]
    users = _users_folder(tmp_path / "users")
    before = tree_snapshot(users)
    with pytest.raises(ForeignPathError):
        preprocessed(record, plan, users)
    for folders in ({"ckpt_dir": users}, {"output_dir": users / "sub"}):
        with pytest.raises(ForeignPathError):
            claim_run_folders(root.parent / "elsewhere", **folders)
    assert tree_snapshot(users) == before
    with pytest.raises(ForeignPathError, match="inside the input"):
        claim_run_folders(users, ckpt_dir=users / "models")
    assert tree_snapshot(users) == before
    preprocessed(record, plan, tmp_path / "cache")
    assert folder_kind(tmp_path / "cache") == "preprocessing cache"
    claim_run_folders(root, ckpt_dir=tmp_path / "models", output_dir=tmp_path / "runs")
    assert folder_kind(tmp_path / "models") == "models" and folder_kind(tmp_path / "runs") == "training logs"


def test_other_writers_refuse_what_they_did_not_write(tmp_path, capsys):
    from bundle.benchmarks.planning import benchmark
    from bundle.cli import qc_correlation
    from bundle.data.dicom import write_series

    users = _users_folder(tmp_path / "users")
    before = tree_snapshot(users)
    with pytest.raises(ForeignPathError):
        benchmark(users, n_patients=1, profile="tiny")
    assert tree_snapshot(users) == before

    image = sitk.GetImageFromArray(np.zeros((3, 8, 8), np.int16))
    write_series(image, tmp_path / "series")
    first = (tmp_path / "series" / "IM0001.dcm").read_bytes()
    with pytest.raises(ForeignPathError, match="never overwrites"):
        write_series(image, tmp_path / "series", uid="1.2.3.4")
    assert (tmp_path / "series" / "IM0001.dcm").read_bytes() == first
    write_series(image, tmp_path / "series", uid="1.2.3.4", prefix="B")  # another series beside it

    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "metrics.csv").write_text("scan,status,la_dsc,scar_dsc,qc_score,qc\na,ok,0.9,0.7,0.5,ok\n"
                                          "b,ok,0.8,0.6,0.4,ok\n")
    out = tmp_path / "notes.json"
    out.write_text("my notes")
    with pytest.raises(SystemExit):
        import sys

        sys.argv = ["jasgan-qc-correlation", "--eval_dirs", str(eval_dir), "--out", str(out)]
        qc_correlation.cli()
    assert "error:" in capsys.readouterr().err and out.read_text() == "my notes"
    qc_correlation.main(str(eval_dir), out=str(tmp_path / "ranking.json"))
    qc_correlation.main(str(eval_dir), out=str(tmp_path / "ranking.json"))  # over its own file
    assert "worst_share" in json.loads((tmp_path / "ranking.json").read_text())[str(eval_dir)]
