"""bundle.evaluation.nnunet: the plan's data and folds as nnU-Net v2's dataset, and its predictions read back."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO

from bundle.data.layouts import load_case, read_dataset
from bundle.errors import ForeignPathError
from bundle.evaluation.comparison import compare_folders
from bundle.evaluation.nnunet import dataset_folder_name, export_dataset, import_predictions, nnunet_splits
from bundle.planning.split import split_records


def test_export_writes_every_planned_scan_and_the_plans_folds(tiny_dataset, tmp_path):
    root, plan = tiny_dataset
    records = read_dataset(root, "datalist")
    raw = export_dataset(records, plan, tmp_path / "nnunet", 7, "Tiny", inputs=[root])
    assert raw == tmp_path / "nnunet" / "nnUNet_raw" / "Dataset007_Tiny"
    training = plan["split"]["train"] + plan["split"]["validation"]
    assert sorted(p.name for p in (raw / "imagesTr").iterdir()) == sorted(f"{s}_0000.nii.gz" for s in training)
    assert sorted(p.name for p in (raw / "labelsTr").iterdir()) == sorted(f"{s}.nii.gz" for s in training)
    assert sorted(p.name for p in (raw / "imagesTs").iterdir()) == sorted(f"{s}_0000.nii.gz"
                                                                         for s in plan["split"]["test"])
    meta = json.loads((raw / "dataset.json").read_text())
    assert meta["numTraining"] == len(training) and meta["file_ending"] == ".nii.gz"
    assert meta["labels"] == {"background": 0, "left_atrium": 1, "scar": 2} and meta["channel_names"] == {"0": "LGE"}
    splits = json.loads((tmp_path / "nnunet" / "nnUNet_preprocessed" / "Dataset007_Tiny" / "splits_final.json")
                        .read_text())
    assert splits == [{"train": f["train"], "val": f["validation"]} for f in plan["split"]["folds"]]
    for fold in splits:  # disjoint by patient, every training scan validated once
        assert not set(fold["train"]) & set(fold["val"])
    assert sorted(s for f in splits for s in f["val"]) == sorted(training)
    scan = training[0]
    case = load_case(next(r for r in records if r["scan"] == scan))
    image = sitk.ReadImage(str(raw / "imagesTr" / f"{scan}_0000.nii.gz"))
    label = sitk.ReadImage(str(raw / "labelsTr" / f"{scan}.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), case.image)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(label), case.label)
    assert np.allclose(label.GetSpacing(), case.spacing) and np.allclose(label.GetOrigin(), case.origin)
    # an export goes only into a folder the bundle wrote (again: its own export), never a user's
    export_dataset(records, plan, tmp_path / "nnunet", 7, "Tiny")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ForeignPathError):
        export_dataset(records, plan, tmp_path / "mine", 7, "Tiny")
    for bad_id, bad_name in ((0, "Tiny"), (1000, "Tiny"), (7, "has space")):
        with pytest.raises(ValueError, match="nnU-Net dataset"):
            dataset_folder_name(bad_id, bad_name)
    with pytest.raises(ValueError, match="no cross-validation folds"):
        nnunet_splits({"split": {**plan["split"], "folds": []}})


def test_nnunet_predictions_come_back_as_a_prediction_folder_that_compare_scores(tiny_dataset, tmp_path):
    root, plan = tiny_dataset
    records = split_records(plan, "test", root, "datalist")
    nnunet_out = tmp_path / "nnunet_test"
    nnunet_out.mkdir()
    for record in records:  # nnU-Net's output: <scan>.nii.gz label maps on the scan's grid (here the truth)
        case = load_case(record)
        sitk.WriteImage(case.to_image(case.label), str(nnunet_out / f"{record['scan']}.nii.gz"))
    rows = import_predictions(nnunet_out, records, tmp_path / "imported", inputs=[root])
    assert [r["status"] for r in rows] == ["ok"] * len(records)
    tables = compare_folders({"nnU-Net": str(tmp_path / "imported")}, records, tmp_path / "cmp")
    assert tables["la"]["methods"]["nnU-Net"]["dsc"]["mean"] == 1.0
    # a missing prediction and one with other label values are failed rows; the others are written
    (nnunet_out / f"{records[0]['scan']}.nii.gz").unlink()
    if len(records) > 1:
        case = load_case(records[1])
        sitk.WriteImage(case.to_image((case.label > 0).astype(np.uint8) * 5),
                        str(nnunet_out / f"{records[1]['scan']}.nii.gz"))
    rows = import_predictions(nnunet_out, records, tmp_path / "imported2")
    assert rows[0]["status"] == "failed" and "missing" in rows[0]["error"]
    if len(records) > 1:
        assert rows[1]["status"] == "failed" and "[5]" in rows[1]["error"]


def test_the_nnunet_command_exports_and_says_what_is_wrong(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    cmd = [sys.executable, "-m", "bundle.cli.nnunet", "export", "--dataset", str(root), "--plan",
           str(root.parent / "tiny.json"), "--out", str(tmp_path / "nn"), "--dataset_id", "12", "--name", "Tiny"]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "nn" / "nnUNet_raw" / "Dataset012_Tiny" / "dataset.json").is_file()
    cmd[cmd.index("12")] = "1000"
    bad = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "error: nnU-Net dataset id" in bad.stderr and "Traceback" not in bad.stderr


def test_nnunet_accepts_the_export(tiny_dataset, tmp_path):
    """Where nnU-Net v2 is installed, its own dataset check passes on the export."""
    nnunet = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    root, plan = tiny_dataset
    raw = export_dataset(read_dataset(root, "datalist"), plan, tmp_path / "nnunet", 7, "Tiny")
    nnunet.verify_dataset_integrity(str(raw), num_processes=1)
