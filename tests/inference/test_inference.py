"""bundle.inference.segmenter: masks on the input's exact grid (NIfTI, NRRD, turned axes), batches with a bad scan, models."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import MICCAI_SPACING

from bundle.data.io import orientation_code, read_image, same_geometry
from bundle.data.layouts import read_dataset
from bundle.data.predictions import (
    LA_FILE,
    PREDICTION_KIND,
    PROBABILITY_FILES,
    SCAR_FILE,
    drop_stale,
    write_prediction,
)
from bundle.errors import DatasetError
from bundle.inference.localizer import Localizer
from bundle.inference.scans import scan_records
from bundle.inference.segmenter import BatchSegmenter, Segmenter, plan_orientation, segment_scans
from bundle.networks import CascadeNet
from bundle.networks.weights import load_model
from bundle.ownership import MARKER, claim_folder
from bundle.preprocessing.image import normalize
from bundle.quantification.burden import quantify

SPACING = MICCAI_SPACING
SIZE_ZYX = (10, 40, 48)
LA_BOX = (slice(2, 8), slice(10, 30), slice(12, 36))
SCAR_BOX = (slice(3, 6), slice(10, 13), slice(12, 36))  # on the LA box's edge
LPS, RAS = (1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1)
# the array's axes point along z, x, y of the patient: a scan stored sagittally, array axis 0 not axial
TURNED = (0, 1, 0, 0, 0, 1, 1, 0, 0)


class ThresholdNet(torch.nn.Module):
    """A stand-in network acting voxel by voxel: LA logit > 0 above ``la_at``, scar logit above ``scar_at``."""

    def __init__(self, la_at: float, scar_at: float) -> None:
        super().__init__()
        self.la_at, self.scar_at = la_at, scar_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([20 * (x - self.la_at), 20 * (x - self.scar_at)], dim=1)


class AsymmetricNet(torch.nn.Module):
    """A stand-in convolutional network that is not equivariant to flips or transposes: a random 5x5 kernel
    and a ramp along the width; each logit map is centred per slice so the masks are neither empty nor full."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 2, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) + torch.linspace(0, 1, x.shape[-1])
        return y - y.mean(dim=(2, 3), keepdim=True)


def box_array() -> np.ndarray:
    array = np.zeros(SIZE_ZYX, np.float32)
    array[LA_BOX] = 100.0
    array[SCAR_BOX] = 300.0
    return array


def make_plan(tiny_plan: dict, spacing_xy=(0.625, 0.625)) -> dict:
    plan = copy.deepcopy(tiny_plan)
    plan["decisions"]["target_spacing"]["value"] = list(spacing_xy)
    return plan


def threshold_net(plan: dict, array: np.ndarray) -> ThresholdNet:
    """Thresholds halfway between the normalised background, LA and scar intensities of ``array``."""
    z = normalize(np.array([0.0, 100.0, 300.0, *array.ravel()]), plan["decisions"]["normalization"]["value"])[:3]
    return ThresholdNet(float(z[0] + z[1]) / 2, float(z[1] + z[2]) / 2).eval()


def write_scan(array: np.ndarray, path, spacing=SPACING, direction=LPS, origin=(12.5, -40.0, 7.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path), True)
    return image


def box_label() -> np.ndarray:
    label = np.zeros(SIZE_ZYX, np.uint8)
    label[LA_BOX] = 1
    label[SCAR_BOX] = 2
    return label


@pytest.fixture
def plan(tiny_dataset) -> dict:
    return make_plan(tiny_dataset[1])


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
@pytest.mark.parametrize("direction", [LPS, RAS, TURNED], ids=["LPS", "RAS", "turned"])
def test_masks_have_the_input_geometry_and_sit_on_the_image(tmp_path, plan, suffix, direction):
    array = box_array()
    write_scan(array, tmp_path / f"scan{suffix}", direction=direction)
    records = scan_records(tmp_path)
    assert records == [{"scan": "scan", "image": str(tmp_path / f"scan{suffix}")}]
    segmenter = Segmenter(threshold_net(plan, array), plan)
    rows = segment_scans(records, segmenter, tmp_path / "out", save_probabilities=True)
    assert rows[0]["status"] == "ok"
    image = read_image(tmp_path / f"scan{suffix}")
    for name in (LA_FILE, SCAR_FILE, *PROBABILITY_FILES):
        written = read_image(tmp_path / "out" / "scan" / name)
        assert same_geometry(image, written), name
        assert orientation_code(written) == orientation_code(image)
    la = sitk.GetArrayFromImage(read_image(tmp_path / "out" / "scan" / LA_FILE))
    scar = sitk.GetArrayFromImage(read_image(tmp_path / "out" / "scan" / SCAR_FILE))
    label = box_label()
    np.testing.assert_array_equal(la, label > 0)  # voxel for voxel on the input's own array
    np.testing.assert_array_equal(scar, label == 2)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    expected = quantify(label, image)
    for key, value in expected.items():
        assert report["scans"][0][key] == pytest.approx(value)
    assert report["meta"]["orientation"] == "LPS"
    assert "scan,ok," in (tmp_path / "out" / "report.csv").read_text()


def test_a_model_of_a_plan_without_scar_labels_segments_no_scar(tmp_path, plan):
    """scar_labels none: the scar head was never trained, so the segmenter writes no scar and the report says so."""
    array = box_array()
    write_scan(array, tmp_path / "scan.nii.gz")
    la_only = {**plan, "label_protocol": {**plan["label_protocol"], "scar_labels": "none"}}
    segmenter = Segmenter(threshold_net(plan, array), la_only)
    runner = BatchSegmenter(scan_records(tmp_path), segmenter, tmp_path / "out")
    assert runner.run()[0]["status"] == "ok"
    la = sitk.GetArrayFromImage(read_image(tmp_path / "out" / "scan" / LA_FILE))
    scar = sitk.GetArrayFromImage(read_image(tmp_path / "out" / "scan" / SCAR_FILE))
    np.testing.assert_array_equal(la, box_label() > 0)
    assert not scar.any()
    assert "not segmented" in json.loads((tmp_path / "out" / "report.json").read_text())["meta"]["scar"]


@pytest.mark.parametrize("orientation", ["RAS", "PSL"])
def test_a_turned_copy_of_a_scan_gets_the_same_world_segmentation(tiny_dataset, orientation):
    """A convolutional network sees the plan's frame: turning the stored axes changes nothing in the world."""
    root, tiny_plan = tiny_dataset
    record = read_dataset(root, "datalist")[0]
    image = read_image(record["image"])
    segmenter = Segmenter(AsymmetricNet().eval(), tiny_plan, closing_radius_mm=2.0)
    result = segmenter.segment(image)
    probs, label = result.probabilities, result.label
    assert 0 < (label > 0).sum() < label.size  # a non-trivial mask
    turned = sitk.DICOMOrient(image, orientation)
    assert orientation_code(turned) == orientation
    turned_result = segmenter.segment(turned)
    probs_t, label_t = turned_result.probabilities, turned_result.label
    assert label_t.shape == sitk.GetArrayFromImage(turned).shape
    back = sitk.GetImageFromArray(label_t)
    back.CopyInformation(turned)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.DICOMOrient(back, "LPS")), label)
    prob = sitk.GetImageFromArray(probs_t[1])
    prob.CopyInformation(turned)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.DICOMOrient(prob, "LPS")), probs[1], atol=1e-6)


def test_a_scan_on_another_spacing_is_resampled_there_and_back(tmp_path, tiny_dataset):
    plan = make_plan(tiny_dataset[1], (0.5, 0.5))  # the network sees 0.5 mm, the scan has 0.625 mm
    array = box_array()
    image = write_scan(array, tmp_path / "scan.nrrd")
    segmenter = Segmenter(threshold_net(plan, array), plan)
    result = segmenter.segment(read_image(tmp_path / "scan.nrrd"))
    probs, label = result.probabilities, result.label
    assert label.shape == probs.shape[1:] == SIZE_ZYX and probs.dtype == np.float32
    truth = box_label()
    dice = 2 * ((label > 0) & (truth > 0)).sum() / ((label > 0).sum() + (truth > 0).sum())
    assert dice > 0.97
    assert same_geometry(image, read_image(tmp_path / "scan.nrrd"))


def test_a_bad_scan_is_reported_and_the_others_are_written(tmp_path, plan):
    scans = tmp_path / "scans"
    scans.mkdir()
    array = box_array()
    write_scan(array, scans / "a.nii.gz")
    write_scan(array, scans / "c.nrrd", direction=RAS)
    data = (scans / "a.nii.gz").read_bytes()
    (scans / "b.nii.gz").write_bytes(data[: len(data) // 2])  # truncated
    (scans / "notes.txt").write_text("not a scan")
    out = tmp_path / "out"
    claim_folder(out, PREDICTION_KIND)  # an earlier run's folder, whose older prediction of b must not survive its failure
    (out / "b").mkdir()
    (out / "b" / LA_FILE).write_bytes(b"old")
    runner = BatchSegmenter(scan_records(scans), Segmenter(threshold_net(plan, array), plan), out,
                            meta={"model": "threshold"})
    rows = runner.run()
    assert [(r["scan"], r["status"]) for r in rows] == [("a", "ok"), ("b", "failed"), ("c", "ok")]
    assert "b.nii.gz" in rows[1]["error"] and "truncated" in rows[1]["error"]
    assert rows[1]["qc"] == "not segmented (failed): see error" and rows[0]["qc"]
    assert (out / "a" / "surface.vtk").is_file() and (out / "a" / "surface.png").is_file()
    assert (out / "a" / LA_FILE).is_file() and (out / "c" / SCAR_FILE).is_file() and not (out / "b").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["n_failed"] == 1 and report["meta"]["model"] == "threshold"
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [MARKER]  # no temporary leftovers
    all_bad = BatchSegmenter([{"scan": "b", "image": str(scans / "b.nii.gz")}], runner.segmenter, tmp_path / "bad")
    with pytest.raises(RuntimeError, match="no scan could be segmented"):
        all_bad.run()
    assert (tmp_path / "bad" / "report.csv").is_file()


def test_an_empty_la_is_reported_with_its_qc_and_no_surface(tmp_path, plan):
    (tmp_path / "scans").mkdir()
    write_scan(box_array(), tmp_path / "scans" / "a.nii.gz")
    (row,) = BatchSegmenter(scan_records(tmp_path / "scans"), Segmenter(ThresholdNet(1e6, 1e6).eval(), plan),
                            tmp_path / "out").run()
    assert row["status"] == "ok" and row["la_ml"] == 0 and "surface_scar_percent" not in row
    assert row["qc"] == "LA volume 0 ml outside 25-250 ml" and not (tmp_path / "out" / "a" / "surface.vtk").exists()


def test_scan_records_errors_and_dataset_splits(tmp_path, tiny_dataset):
    root, tiny_plan = tiny_dataset
    with pytest.raises(DatasetError, match="not found"):
        scan_records(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no scans"):
        scan_records(tmp_path)
    write_scan(box_array(), tmp_path / "x.nii.gz")
    write_scan(box_array(), tmp_path / "x.nrrd")
    with pytest.raises(DatasetError, match="two formats"):
        scan_records(tmp_path)
    with pytest.raises(DatasetError, match="needs a dataset layout"):
        scan_records(tmp_path, split="test")
    (tmp_path / "x.nrrd").unlink()
    write_scan(box_array(), tmp_path / "._x.nii.gz")  # hidden files (e.g. macOS metadata) are not scans
    assert [r["scan"] for r in scan_records(tmp_path)] == ["x"]
    write_scan(box_array(), tmp_path / "a b.nii.gz")
    with pytest.raises(DatasetError, match="a b.nii.gz: rename it"):
        scan_records(tmp_path)
    with pytest.raises(ValueError, match="not a safe file name"):
        write_prediction(tmp_path / "out", "", box_label() > 0, box_label() == 2, sitk.GetImageFromArray(box_array()))
    drop_stale(tmp_path, "")  # never the output folder itself
    assert (tmp_path / "x.nii.gz").is_file()
    test = scan_records(root, "datalist", tiny_plan, "test")
    assert [r["scan"] for r in test] == tiny_plan["split"]["test"]
    assert len(scan_records(root, "datalist")) == tiny_plan["fingerprint"]["summary"]["n_scans"]
    assert plan_orientation(tiny_plan) == "LPS" and plan_orientation({}) == "LPS"


def test_load_model_reads_torchscript_and_state_dicts(tmp_path):
    network = CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4).eval()
    torch.save(network.state_dict(), tmp_path / "model.pt")
    torch.jit.save(torch.jit.script(network), str(tmp_path / "model.ts"))
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        expected = network(x)
        for model in (load_model(tmp_path / "model.ts"),
                      load_model(tmp_path / "model.pt", CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4))):
            assert not model.training
            torch.testing.assert_close(model(x), expected)
    with pytest.raises(DatasetError, match="model file not found"):
        load_model(tmp_path / "none.ts")
    with pytest.raises(DatasetError, match="does not fit"):
        load_model(tmp_path / "model.pt", CascadeNet(1, (8, 16), gs_width=4, lstm_channels=4))
    (tmp_path / "bad.ts").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="bad.ts: not a TorchScript model"):
        load_model(tmp_path / "bad.ts")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    for bad in ("bad.pt", "model.ts"):  # garbage, and a TorchScript archive given as a state dict
        (tmp_path / f"as_state_{bad}.pt").write_bytes((tmp_path / bad).read_bytes())
        with pytest.raises(DatasetError, match="not a readable PyTorch state dict"):
            load_model(tmp_path / f"as_state_{bad}.pt", CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4))


def test_inference_benchmark_times_a_small_whole_scan_through_both_stages():
    from bundle.benchmarks.inference import time_scans

    out = time_scans(shape_zyx=(12, 96, 96), spacing=(2.5, 2.5, 5.0), gl_widths=(4, 8), gs_width=4, lstm_channels=4,
                     profile="cpu", repeats=2, warmup=0, device="cpu")
    assert out["shape_zyx"] == [12, 96, 96] and out["spacing"] == [2.5, 2.5, 5.0] and not out["trained"]
    assert 0 < out["seconds_min"] <= out["seconds_per_scan"] and out["peak_memory_mb"] > 0 and out["device"] == "cpu"
    # random weights: stage 2 still runs on a fixed ROI of typical LA size, never on an empty one
    assert 0 < out["roi_share"] < 1 and all(n > 0 for n in out["roi_voxels_xyz"])
    assert {"read", "stage1", "stage2", "write_and_report"} <= set(out["phases"])
    assert out["stage1"] == "found" and not out["stage1_missed"]
    missed = time_scans(shape_zyx=(12, 96, 96), spacing=(2.5, 2.5, 5.0), gl_widths=(4, 8), gs_width=4,
                        lstm_channels=4, profile="cpu", repeats=1, warmup=0, device="cpu", stage1_missed=True)
    # stage 1 withheld: stage 2 searches the field of view (random weights: whatever it finds, or none)
    assert missed["stage1_missed"] and missed["stage1"] in {"searched", "none"} and missed["phases"]["stage2"] > 0


def test_the_real_carma_crop_gets_masks_on_its_own_grid(carma_dir, plan, tmp_path):
    """The toolkit's real LGE crop (old NRRD0001 header with `spacings` and `axis mins`) goes in and comes out
    as NIfTI masks on exactly its grid."""
    import shutil

    shutil.copy(carma_dir / "autoscar-data.nrrd", tmp_path / "autoscar.nrrd")
    image = read_image(tmp_path / "autoscar.nrrd")
    assert image.GetSpacing() == pytest.approx((0.625, 0.625, 2.5))
    array = sitk.GetArrayFromImage(image)
    z = normalize(array, plan["decisions"]["normalization"]["value"])
    network = ThresholdNet(float(np.percentile(z, 50)), float(np.percentile(z, 99))).eval()
    rows = segment_scans(scan_records(tmp_path), Segmenter(network, plan), tmp_path / "out")
    assert rows[0]["status"] == "ok" and rows[0]["scar_ml"] > 0
    for name in (LA_FILE, SCAR_FILE):
        mask = read_image(tmp_path / "out" / "autoscar" / name)
        assert same_geometry(image, mask) and mask.GetSize() == (214, 166, 19)


def test_remaining_error_paths_name_the_file(tmp_path, plan):
    from bundle.data.predictions import prediction_scans
    from bundle.networks.weights import load_weights

    network = CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4)
    torch.save({"network": network.state_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="checkpoint.pt: a state dict needs the network definition"):
        load_model(tmp_path / "checkpoint.pt")
    with pytest.raises(DatasetError, match="checkpoint.pt: checkpoint has no 'model' entry"):
        load_weights(network, tmp_path / "checkpoint.pt", key="model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: no scan folders with la.nii.gz"):
        prediction_scans(tmp_path / "empty")
    array = box_array()
    array[0, 0, 0] = np.nan
    (tmp_path / "scans").mkdir()
    write_scan(array, tmp_path / "scans" / "nan.nrrd")
    rows = segment_scans(scan_records(tmp_path / "scans"), Segmenter(threshold_net(plan, box_array()), plan),
                         tmp_path / "out")
    assert rows[0]["status"] == "failed" and "non-finite" in rows[0]["error"]
    assert rows[0]["image"].endswith("nan.nrrd")


# ------------------------------------------------------------------------------------------ both stages


class BrightLocalizer(torch.nn.Module):
    """A stand-in stage 1: LA logit > 0 where the coarse (z-scored) intensity is above ``level``."""

    def __init__(self, level: float) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 50 * (x - self.level)


WHOLE_ZYX = (12, 96, 112)
WHOLE_LA = (slice(3, 9), slice(60, 84), slice(4, 28))  # near the low-x border, off-centre
WHOLE_SCAR = (slice(4, 7), slice(60, 63), slice(4, 28))
DISTRACTOR = (slice(2, 5), slice(8, 16), slice(90, 100))  # as bright as LA, smaller: stage 1 leaves it out


def whole_array() -> np.ndarray:
    array = np.zeros(WHOLE_ZYX, np.float32)
    array[WHOLE_LA] = 100.0
    array[WHOLE_SCAR] = 300.0
    array[DISTRACTOR] = 100.0
    return array


WHOLE_LA_CASE = {"la_ml": 3.375, "la_extent_mm": [15.0, 15.0, 15.0]}
"""A fingerprint case of :data:`WHOLE_LA`'s size (24 x 24 pixels of 0.625 mm, 6 slices of 2.5 mm): stage 1 finds
LAs of the plan's size plausible."""


def located_plan(tiny_plan: dict, crop_fov_mm: float = 0.0, toy_la: bool = True) -> dict:
    """The tiny plan at 0.625 mm with a 2.5 mm localiser grid, a 2.5 mm ROI margin and 16-pixel snapping; with
    ``toy_la`` its fingerprint's LAs are :data:`WHOLE_LA`'s size, else the tiny phantoms' (78-111 ml)."""
    plan = make_plan(tiny_plan)
    plan["decisions"]["localizer"]["value"].update({"spacing": [2.5, 2.5, 2.5], "downsampling": 1})
    plan["decisions"]["roi"]["value"].update({"margin_mm": 2.5, "multiple": 16, "crop_fov_mm": crop_fov_mm})
    if toy_la:
        plan["fingerprint"]["cases"] = [dict(WHOLE_LA_CASE)]
    return plan


def two_stage_segmenter(plan: dict, array: np.ndarray, level_scale: float = 0.5,
                        roi_values: np.ndarray | None = None) -> Segmenter:
    """Stage 1 finds the bright blocks of ``array``; stage 2 thresholds halfway between background, LA and scar as
    it sees them: z-scored with the moments of the ROI, whose raw ``roi_values`` give them (None: any stage 2)."""
    net = threshold_net(plan, array)
    localizer = Localizer(BrightLocalizer(net.la_at * level_scale), plan)
    if roi_values is not None:
        mean, std = float(roi_values.mean()), float(roi_values.std(ddof=1))
        net = ThresholdNet((50.0 - mean) / std, (200.0 - mean) / std).eval()
    return Segmenter(net, plan, localizer=localizer)


def accepting_any_la(segmenter: Segmenter) -> Segmenter:
    """``segmenter`` with any LA plausible (0 ml up), so that whatever its stand-in stage 2 finds in stage 1's ROI
    stands instead of making the scan no_la."""
    localizer = segmenter.stages.localizer
    localizer.la_range = dataclasses.replace(localizer.la_range, ml=(0.0, 1e6))
    return segmenter


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
@pytest.mark.parametrize("direction", [LPS, RAS, TURNED], ids=["LPS", "RAS", "turned"])
def test_two_stages_paste_the_roi_back_on_the_input_grid(tmp_path, tiny_dataset, suffix, direction):
    plan = located_plan(tiny_dataset[1])
    array = whole_array()
    write_scan(array, tmp_path / f"scan{suffix}", direction=direction)
    any_stage_2 = accepting_any_la(two_stage_segmenter(plan, array))  # for stage 1's ROI
    (first,) = segment_scans(scan_records(tmp_path), any_stage_2, tmp_path / "first")
    (x0, y0, z0), (x1, y1, z1) = first["roi_start"], first["roi_stop"]  # the scan's own indices = the array's
    segmenter = two_stage_segmenter(plan, array, roi_values=array[z0:z1, y0:y1, x0:x1])
    rows = segment_scans(scan_records(tmp_path), segmenter, tmp_path / "out")
    (row,) = rows
    assert row["status"] == "ok" and row["stage1"] == "found"
    image = read_image(tmp_path / f"scan{suffix}")
    la_image = read_image(tmp_path / "out" / "scan" / LA_FILE)
    assert same_geometry(image, la_image) and same_geometry(image, read_image(tmp_path / "out" / "scan" / SCAR_FILE))
    truth = np.zeros(WHOLE_ZYX, np.uint8)
    truth[WHOLE_LA] = 1
    truth[WHOLE_SCAR] = 2
    # stage 2 alone would label the distractor too: outside the ROI everything is background
    np.testing.assert_array_equal(sitk.GetArrayFromImage(la_image), truth > 0)
    # the ROI, in the scan's own voxel indices (x, y, z), holds the LA and leaves out the distractor
    start, stop = np.array(row["roi_start"]), np.array(row["roi_stop"])
    la_xyz = np.argwhere(truth > 0)[:, ::-1]
    assert np.all(la_xyz.min(axis=0) >= start) and np.all(la_xyz.max(axis=0) < stop)
    assert np.all(start >= 0) and np.all(stop <= np.array(image.GetSize()))
    distractor = np.zeros(WHOLE_ZYX, bool)
    distractor[DISTRACTOR] = True
    d_xyz = np.argwhere(distractor)[:, ::-1]
    assert not np.all((d_xyz >= start) & (d_xyz < stop), axis=1).any()
    lo, hi = np.array(row["roi_min_mm"]), np.array(row["roi_max_mm"])
    centre = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in la_xyz.mean(axis=0)])
    assert np.all(lo < centre) and np.all(centre < hi)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["scans"][0]["roi_start"] == row["roi_start"] and report["meta"]["orientation"] == "LPS"


def test_no_la_found_is_its_own_status_with_the_reason(tmp_path, tiny_dataset):
    plan = located_plan(tiny_dataset[1])
    array = whole_array()
    write_scan(array, tmp_path / "scan.nii.gz")
    out = tmp_path / "out"
    claim_folder(out, PREDICTION_KIND)
    (out / "scan").mkdir()
    (out / "scan" / LA_FILE).write_bytes(b"older masks")
    runner = BatchSegmenter(scan_records(tmp_path), two_stage_segmenter(plan, array, level_scale=100.0), out)
    (row,) = runner.run()  # not an error for the batch
    assert row["status"] == "no_la" and row["stage1"] == "none" and "found no LA" in row["error"]
    assert "la_ml" not in row and row["roi_start"] is None and not (out / "scan").exists()
    assert row["qc"] == "not segmented (no_la): see error"
    report = json.loads((out / "report.json").read_text())
    assert report["n_failed"] == 0 and report["scans"][0]["status"] == "no_la"
    assert "scan,no_la," in (out / "report.csv").read_text()


class BlankNet(torch.nn.Module):
    """A stage 2 that sees no LA anywhere (every logit -10)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2, *x.shape[2:]), -10.0)


def test_a_stage_1_choice_stage_2_refutes_everywhere_is_no_la_not_ok_with_0_ml(tmp_path, tiny_dataset):
    """Stage 1 finds a plausible LA, stage 2 segments nothing there nor in its search: the scan has no LA (no_la with
    both stages' reasons, no masks), never ``ok`` with 0 ml."""
    plan = located_plan(tiny_dataset[1])
    array = whole_array()
    write_scan(array, tmp_path / "scan.nii.gz")
    segmenter = two_stage_segmenter(plan, array)
    segmenter.network = BlankNet()
    (row,) = segment_scans(scan_records(tmp_path), segmenter, tmp_path / "out")
    assert row["status"] == "no_la" and row["stage1"] == "none" and "la_ml" not in row and row["roi_start"] is None
    assert row["error"].startswith("stage 1's choice: LA found:")  # stage 1 chose a plausible LA
    assert "stage 2 found no plausible LA" in row["error"] and "stage 1's choice (0.0 ml)" in row["error"]
    assert row["qc"] == "not segmented (no_la): see error" and not (tmp_path / "out" / "scan").exists()


class WeakLocalizer(torch.nn.Module):
    """A stand-in stage 1 unsure of the LA: probability ``p`` where the coarse intensity is above ``level``, about
    0 elsewhere."""

    def __init__(self, level: float, p: float = 0.35) -> None:
        super().__init__()
        self.level, self.logit = level, float(np.log(p / (1 - p)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > self.level, self.logit, -10.0)


def test_a_weak_la_found_by_the_wider_search_is_reported_as_widened(tmp_path, tiny_dataset):
    plan = located_plan(tiny_dataset[1])
    array = whole_array()
    write_scan(array, tmp_path / "scan.nii.gz")
    segmenter = accepting_any_la(two_stage_segmenter(plan, array))
    segmenter.stages.localizer.network = WeakLocalizer(segmenter.stages.localizer.network.level)
    (row,) = segment_scans(scan_records(tmp_path), segmenter, tmp_path / "out")
    assert row["status"] == "ok" and row["stage1"] == "widened" and row["qc"]
    assert ",widened," in (tmp_path / "out" / "report.csv").read_text()
    (x0, y0, z0), (x1, y1, z1) = row["roi_start"], row["roi_stop"]  # LPS: the scan's indices are the array's
    roi = np.zeros(WHOLE_ZYX, bool)
    roi[z0:z1, y0:y1, x0:x1] = True
    assert roi[WHOLE_LA].all() and not roi[DISTRACTOR].any()  # the LA's region, not the distractor's
    assert (tmp_path / "out" / "scan" / LA_FILE).is_file()
    result = segmenter.segment(read_image(tmp_path / "scan.nii.gz"))
    assert result.stage1 == "widened" and "wider search at p > 0.3" in result.detail


def test_an_la_of_implausible_size_is_no_la_with_the_reason(tmp_path, tiny_dataset):
    """A 3.4 ml 'LA' is no LA for a plan of 78-111 ml LAs (and the literature's 25-250 ml): never 'ok' with it."""
    plan = located_plan(tiny_dataset[1], toy_la=False)
    array = whole_array()
    write_scan(array, tmp_path / "scan.nii.gz")
    (row,) = segment_scans(scan_records(tmp_path), two_stage_segmenter(plan, array), tmp_path / "out")
    assert row["status"] == "no_la" and row["stage1"] == "none" and "found no LA" in row["error"]
    assert "15 x 15 x 15 mm" in row["error"] and "volume 3 ml outside 17-375 ml" in row["error"]
    # stage 2 checked it as a piece of a larger LA (stage 1's guess) and found no plausible LA there
    assert "stage 2 found no plausible LA (at least 17 ml) in a guess of 3 ml (" in row["error"]


def test_a_crop_skips_stage_1_and_is_segmented_whole(tmp_path, tiny_dataset):
    plan = located_plan(tiny_dataset[1], crop_fov_mm=1000.0)
    array = whole_array()
    write_scan(array, tmp_path / "scan.nrrd")
    result = two_stage_segmenter(plan, array, level_scale=100.0).segment(read_image(tmp_path / "scan.nrrd"))
    assert result.status == "ok" and result.stage1 == "crop" and "stage 1 skipped" in result.detail
    assert result.roi["start"] == [0, 0, 0] and result.roi["stop"] == [112, 96, 12]
    assert (result.probabilities[0][DISTRACTOR] > 0.5).all()  # stage 2 ran on the whole scan (the largest
    assert not result.label[DISTRACTOR].any()  # component then keeps the LA)
