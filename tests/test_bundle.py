"""The bundle as a user runs it: metadata, and the `training` run id on the tiny whole-field-of-view profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO

from bundle.data.io import read_image, same_geometry
from bundle.planning.planner import load_plan

SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"


def test_configs_metadata_is_a_copy_of_the_top_level_file():
    """metadata.json is the one to edit; configs/metadata.json (where Model Zoo tools look) is a plain copy of it, not
    a symlink (symlinks break on some systems and archives): ``cp metadata.json configs/metadata.json``."""
    copy = REPO / "configs" / "metadata.json"
    assert not copy.is_symlink()
    assert copy.read_bytes() == (REPO / "metadata.json").read_bytes(), "run: cp metadata.json configs/metadata.json"
    meta = json.loads(copy.read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["num_channels"] == 2


def test_package_version_is_the_bundle_version():
    import bundle

    assert bundle.__version__ == json.loads((REPO / "metadata.json").read_text())["version"]


def test_metadata_follows_the_model_zoo_schema():
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMA.is_file():
        pytest.skip(f"Model Zoo schema not found at {SCHEMA}")
    jsonschema.validate(json.loads((REPO / "metadata.json").read_text()), json.loads(SCHEMA.read_text()))


def _bundle_cmd(tmp_path: Path, *overrides: str, config: str = "configs/train.yaml", run_id: str = "training") -> list[str]:
    return [
        sys.executable, "-m", "monai.bundle", "run", run_id, "--config_file", config,
        "--dataset_dir", str(tmp_path / "phantom"), "--plan_file", str(tmp_path / "plans" / "tiny.json"),
        "--phantom#n_patients", "3", "--phantom#profile", "tinyfov", "--cache_dir", str(tmp_path / "cache"),
        "--ckpt_dir", str(tmp_path / "models"), "--output_dir", str(tmp_path / "runs"),
        "--max_epochs", "1", "--val_interval", "1", "--localizer_epochs", "15", "--log_interval", "1",
        # 15 stage-1 epochs on 3 tiny patients: a constant rate, as the poly decay leaves such a short run too little
        # of its rate to find the LA
        "--localizer_lr_power", "0.0", *overrides,
    ]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_training_run_end_to_end(tmp_path):
    """`monai.bundle run training` on tiny whole-field-of-view phantoms: data, plan, both stages, validation on
    whole scans, export of both models, inference and evaluation with both stages, resume."""
    import torch

    from bundle.networks import LocalizerNet

    data, models = tmp_path / "phantom", tmp_path / "models"
    run = _run(_bundle_cmd(tmp_path, "--gl_warmup_epochs", "2", "--scar_warmup_epochs", "1",
                           "--average_from_epoch", "1"))
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert " - ERROR - " not in log, log[-3000:]
    assert (data / "phantom.json").is_file() and (data / "dataset.json").is_file()
    plan = load_plan(tmp_path / "plans" / "tiny.json")
    manifest = json.loads((data / "phantom.json").read_text())
    assert sorted(c["scan"] for c in plan["fingerprint"]["cases"]) == sorted(manifest["scans"])
    assert "val_dice_la" in log and "val_dice_scar" in log and "training workflow wall time" in log
    assert "localizer_loss" in log and "stage 1 on 2 validation scans: ROI recall" in log
    assert "stage 2a: Gl alone for 2 epochs" in log and "gl_warmup_loss" in log
    assert "stage 2b: Ga and Gs on the frozen Gl for 1 epochs" in log and "scar_warmup_loss" in log
    assert "Gls is now the mean of its last" in log   # weight averaging, before the last validation
    assert (models / "model.pt").is_file() and (models / "checkpoint_final.pt").is_file()
    scripted = torch.jit.load(str(models / "model.ts"))
    size = plan["decisions"]["patch_size"]["value"]
    assert scripted(torch.randn(1, 1, *size)).shape == (1, 2, *size)
    loc = plan["decisions"]["localizer"]["value"]
    localizer = torch.jit.load(str(models / "localizer.ts"))  # stage 1 travels with stage 2
    assert localizer(torch.randn(1, 1, *loc["patch_size"])).shape == (1, 1, *loc["patch_size"])
    LocalizerNet(loc["widths"], loc["strides"]).load_state_dict(torch.load(models / "localizer.pt", weights_only=True))
    confidence = torch.jit.load(str(models / "discriminator.ts"))  # T of model.pt's epoch, for qc_score
    t = confidence(torch.rand(1, 3, *size))
    assert t.shape == (1, 1, *size) and 0 <= float(t.min()) <= float(t.max()) <= 1
    state = torch.load(models / "checkpoint_final.pt", weights_only=True)
    assert {"network", "discriminator", "optimizer", "d_optimizer", "loss", "lr_scheduler", "trainer",
            "weight_averaging"} <= set(state)
    assert int(state["weight_averaging"]["n_averaged"]) == state["trainer"]["epoch_length"]
    assert state["trainer"]["iteration"] == state["trainer"]["epoch_length"] and "log_vars" in state["loss"]

    # inference.yaml: the exported model on the folder of scans; masks on each scan's grid, a report row each
    out = tmp_path / "outputs"
    infer = _run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
                  "--dataset_dir", str(data / "imagesTr"), "--plan_file", str(tmp_path / "plans" / "tiny.json"),
                  "--model_file", str(models / "model.ts"), "--localizer_file", str(models / "localizer.ts"),
                  "--discriminator_file", str(models / "discriminator.ts"), "--output_dir", str(out)])
    assert infer.returncode == 0, (infer.stdout + infer.stderr)[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["n_scans"] == len(manifest["scans"]) and report["n_failed"] == 0
    assert report["meta"]["localizer"].endswith("localizer.ts")
    for row in report["scans"]:  # a barely trained stage 1 may find no LA: that is its own status, never "ok"
        assert row["status"] in ("ok", "no_la") and row["stage1"] in ("found", "widened", "searched", "none")
        if row["status"] == "no_la":
            assert "found no LA" in row["error"] and not (out / row["scan"]).exists()
            continue
        image = read_image(row["image"])
        for name in ("la.nii.gz", "scar.nii.gz"):
            assert same_geometry(image, read_image(out / row["scan"] / name))
        assert row["scar_percent"] <= 100 and row["la_ml"] >= row["wall_ml"] >= row["scar_ml"] >= 0
        assert all(0 <= a < b <= n for a, b, n in zip(row["roi_start"], row["roi_stop"], image.GetSize()))
        # the surface scar map and the quality check of every segmented scan
        assert 0 <= row["surface_scar_percent"] <= 100 and row["surface_area_cm2"] > 0
        assert all((out / row["scan"] / f).stat().st_size > 0 for f in ("surface.vtk", "surface.ply", "surface.png"))
        assert 0 <= row["qc_score"] <= 1 and row["qc"]
    assert report["meta"]["qc_rules"]["la_ml_min"] == 25.0 and "majority" in report["meta"]["surface"]["projection"]

    # the same scan as a DICOM series (oblique files, reverse order): masks on the series' grid, equal to the NIfTI's
    from bundle.data.dicom import write_series

    first = next(r for r in report["scans"] if r["status"] == "ok")
    write_series(read_image(first["image"]), tmp_path / "pacs" / "study1" / "series9", number=9, reverse=True)
    dicom_out = tmp_path / "dicom-outputs"
    infer = _run([sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.yaml",
                  "--dataset_dir", str(tmp_path / "pacs"), "--series_description", "['LGE']", "--save_dicom_seg", "True",
                  "--plan_file", str(tmp_path / "plans" / "tiny.json"), "--model_file", str(models / "model.ts"),
                  "--localizer_file", str(models / "localizer.ts"), "--output_dir", str(dicom_out)])
    assert infer.returncode == 0, (infer.stdout + infer.stderr)[-3000:]
    (row,) = json.loads((dicom_out / "report.json").read_text())["scans"]
    assert row["scan"] == "PAT1_S9" and row["series"] == "3D LGE" and row["status"] == "ok"
    assert (dicom_out / "PAT1_S9" / "seg.dcm").stat().st_size > 0
    for name in ("la.nii.gz", "scar.nii.gz"):
        from_dicom, from_nifti = read_image(dicom_out / "PAT1_S9" / name), read_image(out / first["scan"] / name)
        assert same_geometry(from_dicom, from_nifti)
        assert np.array_equal(sitk.GetArrayFromImage(from_dicom), sitk.GetArrayFromImage(from_nifti))
    assert row["scar_percent"] == pytest.approx(first["scar_percent"])

    # evaluate.yaml over train.yaml: the test split segmented with model.pt and scored against its labels
    evaluation = _run(_bundle_cmd(tmp_path, "--eval_dir", str(tmp_path / "eval"),
                                  config="['configs/train.yaml','configs/evaluate.yaml']", run_id="evaluating"))
    log = evaluation.stdout + evaluation.stderr
    assert evaluation.returncode == 0, log[-3000:]
    assert "evaluation workflow wall time" in log and "exported" not in log
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["n_cases"] == len(plan["split"]["test"]) and summary["n_failed"] == 0
    assert "roi_recall" in summary["metrics"]["all"]
    assert (tmp_path / "eval" / "metrics.csv").is_file() and (tmp_path / "eval" / "scar_percent.png").is_file()
    predicted = json.loads((tmp_path / "eval" / "predictions" / "report.json").read_text())["scans"]
    assert sorted(r["scan"] for r in predicted) == sorted(plan["split"]["test"])
    quality = summary["quality_check"]  # qc_score (T exported beside model.pt) ranked against the Dice
    assert quality["n"] == len(plan["split"]["test"]) and set(quality["la"]["spearman_qc_score_dice"]) >= {"rho", "n"}

    # stage1.yaml's check: the trained stage 1 on every whole scan of every split, logged, nothing written
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    checked = _run(_bundle_cmd(tmp_path, config="['configs/train.yaml','configs/stage1.yaml']", run_id="check_stage1"))
    log = checked.stdout + checked.stderr
    assert checked.returncode == 0, log[-3000:]
    n_scans = sum(len(plan["split"][s]) for s in ("train", "validation", "test"))
    assert f"stage 1 on {data}: {n_scans} whole scans" in log and f"stage 1 on {n_scans} whole scans of 1" in log
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before

    # resume: the second run starts at epoch 1 of 2 with the saved weights, data and plan reused, and stage 1 as saved
    stage1 = (models / "localizer.pt").read_bytes()
    resumed = _run(_bundle_cmd(tmp_path, "--resume_from", str(models / "checkpoint_final.pt"), "--max_epochs", "2"))
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert "resuming from iteration" in log and "epoch 1 until 2 epochs" in log, log[-3000:]
    assert "localizer_loss" not in log and (models / "localizer.pt").read_bytes() == stage1
    trainer_state = torch.load(models / "checkpoint_final.pt", weights_only=True)["trainer"]
    assert trainer_state["iteration"] == 2 * trainer_state["epoch_length"]

    # a plan that describes other scans is refused with a clear message
    (data / "dataset.json").write_text((data / "dataset.json").read_text().replace('"P001_', '"X001_'))
    bad = _run(_bundle_cmd(tmp_path))
    assert bad.returncode != 0
    assert "plan does not match the scans" in bad.stderr + bad.stdout


@pytest.mark.slow
def test_generalization_check_trains_without_the_held_out_family_and_scores_it(tmp_path):
    """configs/generalization.yaml as README runs it, on the tiny profile: the model trains on phantoms without the
    held-out intensity family, then the table scores the test split, a cohort of that family and the CARMA crop."""
    configs = "['configs/train.yaml','configs/evaluate.yaml','configs/evaluate_generalization.yaml'," \
              "'configs/generalization.yaml']"
    run = _run(_bundle_cmd(tmp_path, "--held_out", '{"intensity": ["dark"]}', "--generalization_profile", "tinyfov",
                           "--generalization_patients", "1", "--generalization_dir", str(tmp_path / "cohorts"),
                           "--eval_dir", str(tmp_path / "eval"), config=configs, run_id="generalization"))
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    trained = json.loads((tmp_path / "phantom" / "phantom.json").read_text())["scan_families"]
    assert trained and "dark" not in {f["intensity"] for f in trained.values()}
    held = json.loads((tmp_path / "cohorts" / "intensity_dark" / "phantom.json").read_text())["scan_families"]
    assert {f["intensity"] for f in held.values()} == {"dark"}
    table = json.loads((tmp_path / "eval" / "generalization.json").read_text())
    names = [r["cohort"] for r in table["rows"]]
    assert names[:3] == ["test_split", "in_distribution", "intensity_dark"] and names[3:] in ([], ["carma"])
    for row in table["rows"]:
        assert row["scans"] >= 1 and row["failed"] == 0 and 0 <= row["no_la"] <= row["scans"]
    assert "| intensity_dark |" in (tmp_path / "eval" / "generalization.md").read_text()


@pytest.mark.slow
def test_multitask_unet_overlay_trains_and_exports(tmp_path):
    """configs/mtl.yaml: the multi-task U-Net trains with its classification loss, validates and exports."""
    import torch

    from bundle.networks import NO_SCAR_LOGIT

    run = _run(_bundle_cmd(tmp_path, "--log_interval", "1", config="['configs/train.yaml','configs/mtl.yaml']"))
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert "class_loss" in log and "val_dice_la" in log and "d_loss" not in log
    state = torch.load(tmp_path / "models" / "checkpoint_final.pt", weights_only=True)
    assert "discriminator" not in state and any(k.startswith("classifier.") for k in state["network"])
    scripted = torch.jit.load(str(tmp_path / "models" / "model.ts"))
    out = scripted(torch.randn(1, 1, 64, 64))
    assert out.shape == (1, 2, 64, 64) and torch.all(out[:, 1] == NO_SCAR_LOGIT)


def test_train_config_has_the_model_zoo_train_properties(tiny_dataset, tmp_path):
    from monai.bundle import ConfigWorkflow

    root, _ = tiny_dataset
    workflow = ConfigWorkflow(
        config_file=str(REPO / "configs" / "train.yaml"), workflow_type="train", dataset_dir=str(root),
        plan_file=str(root.parent / "tiny.json"), cache_dir=str(tmp_path / "cache"), ckpt_dir=str(tmp_path / "m"),
        output_dir=str(tmp_path / "runs"), phantom={"n_patients": 3, "profile": "tiny", "seed": 0},
    )
    workflow.initialize()
    assert not workflow.check_properties()
    assert workflow.max_epochs == workflow.parser.get_parsed_content("max_epochs")
    assert workflow.train_inferer is not None and len(workflow.train_dataset) > 0


def test_inference_config_has_the_model_zoo_infer_properties(tiny_dataset, tmp_path):
    import torch
    from monai.bundle import ConfigWorkflow

    from bundle.networks import CascadeNet, LocalizerNet

    root, plan = tiny_dataset
    model, localizer = tmp_path / "model.ts", tmp_path / "localizer.ts"
    torch.jit.save(torch.jit.script(CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4)), str(model))
    loc = plan["decisions"]["localizer"]["value"]
    torch.jit.save(torch.jit.script(LocalizerNet(loc["widths"], loc["strides"])), str(localizer))
    workflow = ConfigWorkflow(
        config_file=str(REPO / "configs" / "inference.yaml"), workflow_type="infer", dataset_dir=str(root / "imagesTr"),
        plan_file=str(root.parent / "tiny.json"), output_dir=str(tmp_path / "out"), model_file=str(model),
        localizer_file=str(localizer),
    )
    workflow.initialize()
    assert not workflow.check_properties()
    assert len(workflow.dataset) == len(list((root / "imagesTr").iterdir()))


def test_inference_config_segments_with_two_runs_as_one_model(tiny_dataset, tmp_path):
    """README's two-seed recipe: lists of TorchScript files for both stages make each stage the mean of its
    members' probabilities, through the default CPU backend, and the segmenter segments a scan with them."""
    import torch
    from monai.bundle import ConfigParser

    from bundle.data.io import read_image
    from bundle.networks import CascadeNet, LocalizerNet

    root, plan = tiny_dataset
    loc = plan["decisions"]["localizer"]["value"]
    models, localizers = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(tmp_path / f"model{seed}.ts")
        localizers.append(tmp_path / f"localizer{seed}.ts")
        torch.jit.save(torch.jit.script(CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4).eval()), str(models[-1]))
        torch.jit.save(torch.jit.script(LocalizerNet(loc["widths"], loc["strides"]).eval()), str(localizers[-1]))
    parser = ConfigParser()
    parser.read_config(str(REPO / "configs" / "inference.yaml"))
    parser.update({"plan_file": str(root.parent / "tiny.json"), "model_file": [str(m) for m in models],
                   "localizer_file": [str(f) for f in localizers], "tta_rotations_deg": [0]})
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(torch.jit.load(str(m))(x)) for m in models]).mean(0)
        torch.testing.assert_close(torch.sigmoid(parser.get_parsed_content("stage2")(x)), expected, atol=1e-5, rtol=0)
        volume = torch.randn(1, 1, *loc["patch_size"])
        expected = torch.stack([torch.sigmoid(torch.jit.load(str(f))(volume)) for f in localizers]).mean(0)
        located = parser.get_parsed_content("locator").network(volume)
        torch.testing.assert_close(torch.sigmoid(located), expected, atol=1e-5, rtol=0)
    image = read_image(next((root / "imagesTr").iterdir()))
    result = parser.get_parsed_content("segmenter").segment(image)
    assert result.status in ("ok", "no_la") and result.label.shape == image.GetSize()[::-1]


@pytest.mark.parametrize("overlay", sorted((REPO / "configs" / "ablation").glob("*.yaml")), ids=lambda p: p.stem)
def test_ablation_overlays_choose_a_cascade_and_their_own_folders(overlay):
    from monai.bundle import ConfigParser

    from bundle.networks import CASCADE_OPS

    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "train.yaml"), str(overlay)])
    assert parser["cascade"] in CASCADE_OPS and isinstance(parser["use_discriminator"], bool)
    assert parser.get_parsed_content("ckpt_dir").endswith(f"models/ablation/{overlay.stem}")
    assert parser.get_parsed_content("output_dir").endswith(f"runs/ablation/{overlay.stem}")


def test_a_fold_trains_on_that_folds_scans_into_its_own_folders_and_evaluation_ensembles_folds(tiny_dataset, tmp_path):
    """--fold k: training and validation scans of the plan's k-th fold, models/<run>/fold_k and runs/<run>/fold_k;
    evaluate.yaml's --ensemble [..] takes both stages of those folds' folders."""
    from monai.bundle import ConfigParser

    root, plan = tiny_dataset
    assert len(plan["split"]["folds"]) >= 2
    for k, fold in enumerate(plan["split"]["folds"]):
        parser = ConfigParser()
        parser.read_config([str(REPO / "configs" / "train.yaml"), str(REPO / "configs" / "evaluate.yaml")])
        parser.update({"dataset_dir": str(root), "plan_file": str(root.parent / "tiny.json"), "run_name": "cv",
                       "cache_dir": str(tmp_path / "cache"), "fold": k, "bundle_root": str(tmp_path)})
        assert parser.get_parsed_content("ckpt_dir") == f"{tmp_path}/models/cv/fold_{k}"
        assert parser.get_parsed_content("output_dir") == f"{tmp_path}/runs/cv/fold_{k}"
        assert [c["scan"] for c in parser.get_parsed_content("train#cases")] == fold["train"]
        assert [c["scan"] for c in parser.get_parsed_content("validate#cases")] == fold["validation"]
        assert parser.get_parsed_content("model_file") == f"{tmp_path}/models/cv/fold_{k}/model.pt"
    parser = ConfigParser()
    parser.read_config([str(REPO / "configs" / "train.yaml"), str(REPO / "configs" / "evaluate.yaml")])
    parser.update({"run_name": "cv", "ensemble": [0, 1], "bundle_root": str(tmp_path)})
    assert parser.get_parsed_content("model_file") == [f"{tmp_path}/models/cv/fold_{k}/model.pt" for k in (0, 1)]
    assert parser.get_parsed_content("eval_localizer_file") == [f"{tmp_path}/models/cv/fold_{k}/localizer.pt"
                                                                for k in (0, 1)]


def test_evaluation_uses_the_inference_configs_segmenter():
    """evaluate.yaml takes inference.yaml's segmenter, stage-2 inferer and settings (MONAI % macros), not copies."""
    from monai.bundle import ConfigParser

    inference = ConfigParser()
    inference.read_config(str(REPO / "configs" / "inference.yaml"))
    evaluation = ConfigParser()
    evaluation.read_config([str(REPO / "configs" / "train.yaml"), str(REPO / "configs" / "evaluate.yaml")])
    evaluation.resolve_macro_and_relative_ids()
    for key in ("segmenter", "inferer", "qc_rules", "closing_radius_mm", "save_surface", "backend"):
        assert evaluation[key] == inference[key], key
    assert evaluation["evaluate#predictor#segmenter"] == "@segmenter"


def _zoo(*args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "monai.bundle", *args])


@pytest.mark.slow
def test_model_zoo_checks_pass_for_both_stages(tmp_path):
    """verify_metadata (offline schema), verify_net_in_out and ckpt_export of stage 2 (network_def) and stage 1
    (localizer_def, described by metadata's localizer_data_format), with the committed plan."""
    import torch

    from bundle.networks import CascadeNet, LocalizerNet

    if not SCHEMA.is_file():
        pytest.skip(f"Model Zoo schema not found at {SCHEMA}")
    schema = tmp_path / SCHEMA.name
    schema.write_bytes(SCHEMA.read_bytes())
    checked = _zoo("verify_metadata", "--meta_file", "metadata.json", "--filepath", str(schema))
    assert checked.returncode == 0, checked.stderr[-2000:]
    inference = "configs/inference.yaml"
    for net_id, meta_file in (("network_def", "metadata.json"), ("localizer_def", str(tmp_path / "stage1.json"))):
        if net_id == "localizer_def":  # the same checks read network_data_format: give them stage 1's
            meta = json.loads((REPO / "metadata.json").read_text())
            meta["network_data_format"] = meta.pop("localizer_data_format")
            Path(meta_file).write_text(json.dumps(meta))
        # n=2: 8 x 8 x 8 would leave the localiser's batch-normed bottleneck one voxel, which torch refuses in train mode
        io = _zoo("verify_net_in_out", net_id, "--meta_file", meta_file, "--config_file", inference, "--n", "2")
        assert io.returncode == 0, (net_id, (io.stdout + io.stderr)[-2000:])
    values = load_plan(REPO / "plans" / "phantom.json")["decisions"]
    net = values["network"]["value"]
    loc = values["localizer"]["value"]
    stage2 = CascadeNet(1, net["gl_widths"], net["gs_width"], "adaptive", net["lstm_channels"])
    stage1 = LocalizerNet(loc["widths"], loc["strides"])
    for net_id, network, name in (("network_def", stage2, "model"), ("localizer_def", stage1, "localizer")):
        torch.save(network.state_dict(), tmp_path / f"{name}.pt")
        exported = _zoo("ckpt_export", net_id, "--filepath", str(tmp_path / f"{name}.ts"), "--ckpt_file",
                        str(tmp_path / f"{name}.pt"), "--meta_file", "metadata.json", "--config_file", inference)
        assert exported.returncode == 0, (net_id, (exported.stdout + exported.stderr)[-2000:])
        assert (tmp_path / f"{name}.ts").is_file()
