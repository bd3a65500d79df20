"""The quality check: each rule fires on a case made to trip it and stays silent on a clean one; the
discriminator's quality score and its export; the QC ranking summary."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import REPO

from bundle.errors import DatasetError
from bundle.evaluation.evaluate import quality_ranking
from bundle.networks import ConfidenceMap, JointDiscriminator
from bundle.networks.weights import load_discriminator
from bundle.quantification.qc import OK, QcRules, borders, outside_largest_ml, side
from bundle.quantification.quality import adversarial_confidence
from bundle.training.export import export_torchscript

CLEAN = {"la_ml": 110.0, "scar_percent": 12.0, "removed_ml": 0.4, "borders": [], "qc_score": 0.8}


def test_a_clean_row_passes():
    assert QcRules().check(CLEAN) == OK
    assert QcRules().check({**CLEAN, "qc_score": float("nan")}) == OK  # no discriminator: no confidence rule


@pytest.mark.parametrize(("change", "reason"), [
    ({"la_ml": 12.0}, "LA volume 12 ml outside 25-250 ml"),
    ({"la_ml": 320.0}, "LA volume 320 ml outside 25-250 ml"),
    ({"scar_percent": 64.0}, "scar 64 % of the wall, over 50 %"),
    ({"removed_ml": 20.0}, "20.0 ml of LA outside its largest component (18 % of the LA, over 10 %)"),
    ({"borders": ["image border (superior)"]}, "LA touches the image border (superior)"),
    ({"stage1": "searched"}, "stage 1 missed the LA (found by stage 2's search of the field of view)"),
])
def test_each_rule_fires_on_a_case_made_to_trip_it(change, reason):
    found = QcRules().reasons({**CLEAN, **change})
    assert found == [reason]


def test_a_scan_stage_1_found_is_not_flagged_and_the_search_flag_can_be_turned_off():
    assert all(QcRules().check({**CLEAN, "stage1": s}) == OK for s in ("found", "widened", "crop"))
    assert QcRules(flag_searched=False).check({**CLEAN, "stage1": "searched"}) == OK


def test_adversarial_confidence_rule_is_off_unless_a_threshold_is_set():
    assert QcRules().reasons({**CLEAN, "qc_score": 0.01}) == []
    assert QcRules(qc_score_min=0.5).reasons({**CLEAN, "qc_score": 0.31}) == [
        "low adversarial confidence (qc_score 0.31 < 0.5)"]


def test_reasons_join_and_thresholds_are_configurable():
    row = {**CLEAN, "la_ml": 12.0, "scar_percent": 64.0}
    assert QcRules().check(row) == "LA volume 12 ml outside 25-250 ml; scar 64 % of the wall, over 50 %"
    assert QcRules(la_ml_min=10.0, scar_percent_max=70.0).check(row) == OK
    assert "sources" in QcRules().describe() and QcRules().describe()["la_ml_max"] == 250.0


def _image(shape_zyx=(10, 20, 30), spacing=(1.0, 1.0, 2.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    image = sitk.Image(list(shape_zyx[::-1]), sitk.sitkUInt8)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def test_border_sides_follow_the_scans_orientation():
    assert side(_image(), 2, high=True) == "superior" and side(_image(), 0, high=False) == "right"
    # a sagittal-like storage: voxel x runs posteriorly, voxel y inferiorly, voxel z to the patient's left
    turned = _image(direction=(0, 0, 1, 1, 0, 0, 0, -1, 0))
    assert [side(turned, axis, high=True) for axis in range(3)] == ["posterior", "inferior", "left"]
    assert side(turned, 1, high=False) == "superior"


def test_borders_of_image_and_stage1_region():
    image = _image()
    la = np.zeros((10, 20, 30), bool)
    la[3:7, 5:15, 8:20] = True
    assert borders(la, image) == []
    top = la.copy()
    top[3:, 5:15, 8:20] = True  # reaches the last slice: the superior face of this image
    assert borders(top, image) == ["image border (superior)"]
    roi = {"start": [8, 5, 2], "stop": [20, 15, 9]}  # x, y, z; the LA fills it in x and y
    assert borders(la, image, roi) == [f"stage-1 region border ({s})" for s in ("right", "left", "anterior", "posterior")]
    crop = {"start": [0, 0, 0], "stop": [30, 20, 10]}  # the whole scan (a crop): its faces are the image's
    assert borders(la, image, crop) == []
    speck = np.zeros_like(la)
    speck[9, 10, 10] = True  # one voxel of 1 mm^2 on the superior face: under the 5 mm^2 bound
    assert borders(speck, image) == []


def test_components_outside_the_largest():
    la = np.zeros((10, 20, 30), bool)
    la[2:8, 2:12, 2:12] = True
    assert outside_largest_ml(la, (1.0, 1.0, 2.0)) == 0.0
    la[2:4, 15:18, 20:25] = True  # a second blob of 30 voxels of 2 mm^3
    assert outside_largest_ml(la, (1.0, 1.0, 2.0)) == pytest.approx(0.06)


class _LaConfidence(torch.nn.Module):
    """A stand-in for T: its confidence is the LA probability channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:2]


def test_adversarial_confidence_is_the_mean_inside_the_predicted_la():
    image = torch.randn(6, 16, 16)
    probs = torch.zeros(2, 6, 16, 16)
    probs[0, 2:4, 4:8, 4:8] = 0.9
    probs[0, 2, 4:6, 4:8] = 0.6
    probs[0, 0, 0, 0] = 0.4  # not LA: left out
    expected = float(probs[0][probs[0] > 0.5].mean())
    assert adversarial_confidence(_LaConfidence(), image, probs, batch_size=1) == pytest.approx(expected)
    assert math.isnan(adversarial_confidence(_LaConfidence(), image, torch.zeros(2, 6, 16, 16)))


def test_discriminator_exports_as_a_confidence_map_and_loads(tmp_path, caplog):
    disc = JointDiscriminator(3, channels=(4, 8, 8, 16), subpixel_out=2)
    torch.save(disc.state_dict(), tmp_path / "discriminator.pt")  # what BestModelSaver writes
    export_torchscript(ConfidenceMap(JointDiscriminator(3, channels=(4, 8, 8, 16), subpixel_out=2)),
                       tmp_path / "discriminator.pt", tmp_path / "discriminator.ts", (32, 32), in_channels=3)
    loaded = load_discriminator(tmp_path / "discriminator.ts")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = torch.sigmoid(disc.eval()(x)[0])
        assert torch.allclose(loaded(x), expected, atol=1e-5)
    assert load_discriminator(None) is None
    assert load_discriminator(tmp_path / "missing.ts") is None and "no qc_score" in caplog.text
    with pytest.raises(DatasetError, match="TorchScript export"):
        load_discriminator(tmp_path / "discriminator.pt")
    (tmp_path / "broken.ts").write_bytes(b"not a model")
    with pytest.raises(DatasetError, match="broken.ts"):
        load_discriminator(tmp_path / "broken.ts")


def test_quality_ranking_counts_the_worst_scans_it_flags():
    rows = [{"scan": f"s{i}", "la_dsc": 0.9 + 0.005 * i, "scar_dsc": 0.5 + 0.03 * i, "qc_score": 0.6 + 0.02 * i,
             "qc": OK} for i in range(10)]
    rows[0].update(qc_score=0.4, qc="low adversarial confidence (qc_score 0.40 < 0.5)")
    summary = quality_ranking(rows)
    assert summary["la"]["spearman_qc_score_dice"]["rho"] == pytest.approx(1.0)
    assert summary["la"]["worst"] == ["s0"] and summary["la"]["worst_lowest_qc_score"] == 1
    assert summary["scar"]["worst_flagged"] == 1 and summary["flagged"] == 1
    rows[0]["qc_score"] = 0.9  # the worst scan scored high: not among the lowest, rank correlation below 1
    summary = quality_ranking(rows)
    assert summary["la"]["worst_lowest_qc_score"] == 0 and summary["la"]["spearman_qc_score_dice"]["rho"] < 1.0


def test_qc_correlation_script_per_cohort_and_pooled(tmp_path):
    import csv
    import json
    import subprocess
    import sys

    for cohort, offset in (("a", 0.0), ("b", 0.05)):
        (tmp_path / cohort).mkdir()
        with open(tmp_path / cohort / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, ["scan", "status", "la_dsc", "scar_dsc", "qc_score", "qc"])
            writer.writeheader()
            for i in range(5):
                writer.writerow({"scan": f"{cohort}{i}", "status": "ok", "la_dsc": 0.8 + 0.03 * i + offset,
                                 "scar_dsc": 0.5 + 0.05 * i, "qc_score": 0.3 + 0.1 * i, "qc": OK if i else "x"})
    cmd = [sys.executable, "-m", "bundle.cli.qc_correlation", "--eval_dirs", f"['{tmp_path / 'a'}','{tmp_path / 'b'}']",
           "--out", str(tmp_path / "qc.json")]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "qc.json").read_text())
    assert result["pooled"]["n"] == 10 and result["pooled"]["la"]["worst"] == ["a0"]
    assert result["pooled"]["la"]["worst_lowest_qc_score"] == 1 and "pooled: n 10, flagged 2" in run.stdout
    missing = subprocess.run([sys.executable, "-m", "bundle.cli.qc_correlation", "--eval_dirs", str(tmp_path / "none")],
                             cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert missing.returncode == 2 and "metrics.csv" in missing.stderr
