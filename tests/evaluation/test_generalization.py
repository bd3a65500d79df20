"""bundle.evaluation.generalization: held-out family cohorts, the real CARMA crop, the table."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import carma_path

from bundle.data.layouts import load_case, read_dataset
from bundle.evaluation.generalization import (
    carma_dataset,
    evaluate_cohorts,
    held_out_cohorts,
    training_families,
)
from bundle.inference.segmenter import Segmenter


class Bright(torch.nn.Module):
    """LA wherever the z-scored image is above 0.5, no scar: a crude segmenter whose errors are real."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([20 * (x - 0.5), torch.full_like(x, -20.0)], dim=1)


def test_training_families_and_cohorts():
    held_out = {"intensity": ["dark"], "grid": ["siemens"]}
    trained = training_families(held_out)
    assert trained == {"intensity": ["lge", "random"], "grid": ["utah", "miccai2018"]}
    cohorts = held_out_cohorts(held_out)
    assert list(cohorts) == ["in_distribution", "intensity_dark", "grid_siemens"]
    assert cohorts["intensity_dark"] == {"intensity": ["dark"], "grid": ["utah", "miccai2018"]}
    for bad, match in (({"intensity": ["lge", "dark", "random"]}, "nothing to train"), ({"colour": ["red"]}, "unknown"),
                       ({"grid": ["ge"]}, "no members")):
        with pytest.raises(ValueError, match=match):
            training_families(bad)


def test_the_carma_crop_as_a_one_scan_dataset(carma_dir, tmp_path):
    folder = carma_dataset(carma_dir, tmp_path / "carma")
    (record,) = read_dataset(folder, "datalist")
    case = load_case(record)
    endo = sitk.GetArrayFromImage(sitk.ReadImage(str(carma_dir / "autoscar-endo.nrrd"))) > 0
    wall = sitk.GetArrayFromImage(sitk.ReadImage(str(carma_dir / "autoscar-wall.nrrd"))) > 0
    assert np.array_equal(case.label > 0, endo | wall)
    assert int((case.label == 2).sum()) == 2113  # the toolkit's automatic scar (README of the fixtures)
    assert carma_dataset(tmp_path / "nowhere", tmp_path / "none") is None


def test_evaluate_cohorts_writes_a_row_per_cohort(tmp_path, tiny_dataset):
    _, plan = tiny_dataset
    segmenter = Segmenter(Bright(), plan)
    rows = evaluate_cohorts(segmenter, {"intensity": ["dark"], "anatomy": ["left_common"]}, tmp_path / "data",
                            tmp_path / "out", n_patients=1, seed=3, profile="tinyfov", carma_dir=carma_path())
    names = [r["cohort"] for r in rows]
    assert names[:3] == ["in_distribution", "intensity_dark", "anatomy_left_common"]
    assert names[3:] in ([], ["carma"])
    for row in rows:
        assert row["scans"] >= 1 and row["failed"] == 0
        assert 0.0 <= row["la_dsc"]["mean"] <= 1.0 and row["la_volume_ratio"]["median"] > 0
        assert 0.0 <= row["la_far_osr"]["mean"] <= row["la_volume_ratio"]["max"]
    dark = read_dataset(tmp_path / "data" / "intensity_dark", "datalist")
    manifest = json.loads((tmp_path / "data" / "intensity_dark" / "phantom.json").read_text())
    assert {f["intensity"] for f in manifest["scan_families"].values()} == {"dark"} and len(dark) == rows[1]["scans"]
    # each phantom cohort's scar Dice per intensity model: the dark cohort has only dark scans, CARMA none
    assert list(rows[1]["scar_by_intensity"]) == ["dark"]
    assert rows[1]["scar_by_intensity"]["dark"]["n"] == rows[1]["scans"]
    assert "dark" not in rows[0]["scar_by_intensity"]
    assert all(r["scar_by_intensity"] == {} for r in rows if r["cohort"] == "carma")
    table = (tmp_path / "out" / "generalization.md").read_text()
    assert all(f"| {n} |" in table for n in names)
    dark_line = next(line for line in table.splitlines() if line.startswith("| intensity_dark |"))
    assert f"dark {rows[1]['scar_by_intensity']['dark']['mean']:.3f} ({rows[1]['scans']})" in dark_line
    assert f"| {rows[1]['la_far_osr']['mean']:.3f} +- " in dark_line and "further than 3 mm" in table
    assert dark_line.endswith("| 0 | 0 |") and "| no LA found | stage 1 missed, stage 2's search found |" in table
    assert all(r["no_la"] == 0 and r["searched"] == 0 for r in rows)  # no stage 1: every scan a crop, none missed
    saved = json.loads((tmp_path / "out" / "generalization.json").read_text())
    assert saved["held_out"] == {"intensity": ["dark"], "anatomy": ["left_common"]} and len(saved["rows"]) == len(rows)
