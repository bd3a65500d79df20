"""bundle.inference.localizer and bundle.inference.two_stage: the coarse grid, locating with stand-in networks, stage 2 only on the
ROI, and a real LocalizerNet trained on tiny whole-field-of-view phantoms finding their off-centre LA."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bundle.inference.localizer import CROP, NO_LA, Localizer, coarse_shape, largest_component, to_coarse
from bundle.inference.two_stage import BACKGROUND_LOGIT, TwoStageInferer
from bundle.preprocessing.roi import Roi
from bundle.quantification.qc import OK
from bundle.training.datasets import localizer_items
from bundle.training.validation import log_rois

SPACING = (1.0, 1.0, 2.0)  # x, y, z


def _plan(spacing=(4.0, 4.0, 4.0), downsampling=4, margin_mm=4.0, multiple=8, crop_fov_mm=0.0) -> dict:
    return {"decisions": {
        "localizer": {"value": {"spacing": list(spacing), "downsampling": downsampling, "patch_size": [8, 16, 16],
                                "widths": [4, 8, 16], "strides": [2, 2]}},
        "roi": {"value": {"margin_mm": margin_mm, "multiple": multiple, "crop_fov_mm": crop_fov_mm}},
    }}


class BrightNet(torch.nn.Module):
    """A stand-in stage 1: LA wherever the coarse intensity exceeds ``level``; records its input shapes."""

    def __init__(self, level: float = 0.5) -> None:
        super().__init__()
        self.level = level
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return 50 * (x - self.level)


def _volume() -> np.ndarray:
    """(z, y, x) = (16, 64, 64) at 1 x 1 x 2 mm with a bright 'LA' block off-centre and a small bright blob."""
    v = np.zeros((16, 64, 64), np.float32)
    v[4:10, 40:56, 8:24] = 1.0
    v[12:14, 4:8, 50:54] = 1.0  # a smaller bright structure elsewhere: not the largest component
    return v


def test_coarse_grid_is_an_exact_area_average():
    v = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8)
    c = to_coarse(v, (1.0, 1.0, 2.0), (4.0, 4.0, 4.0))
    assert c.shape == (1, 1, 2, 2, 2) == (1, 1, *coarse_shape(v.shape, (1, 1, 2), (4, 4, 4)))
    np.testing.assert_allclose(c[0, 0, 0, 0, 0].item(), v[:2, :4, :4].mean())
    assert coarse_shape((44, 576, 576), (0.625, 0.625, 2.5), (4.48, 4.48, 4.48)) == (25, 80, 80)


def test_largest_component_keeps_the_biggest_blob():
    m = np.zeros((5, 10, 10), bool)
    m[0:2, 0:2, 0:2] = True
    m[2:5, 4:9, 4:9] = True
    assert largest_component(m).sum() == 75 and not largest_component(np.zeros_like(m)).any()


def test_locate_finds_the_off_centre_block_with_its_margin():
    v = _volume()
    net = BrightNet()
    loc = Localizer(net, _plan()).locate(v, SPACING)
    assert loc.status == OK and loc.roi is not None
    truth = np.zeros(v.shape, bool)
    truth[4:10, 40:56, 8:24] = True
    assert loc.roi.recall(truth) == 1.0
    assert loc.roi.start[1] <= 40 - 4 and loc.roi.stop[2] >= 24 + 4  # 4 mm margin in-plane
    assert loc.roi.shape[1] % 8 == 0 and loc.roi.shape[2] % 8 == 0
    assert loc.roi.stop[1] > 56 and loc.roi.start[2] < 8  # the smaller blob (x 50..54) is not in the box
    assert loc.roi.stop[2] < 50
    assert net.shapes == [(1, 1, 8, 16, 16)]  # the coarse grid (4 mm), padded to a multiple of 4


def test_locate_reports_no_la_and_crops():
    v = _volume()
    loc = Localizer(BrightNet(level=5.0), _plan()).locate(v, SPACING)
    assert loc.status == NO_LA and loc.roi is None and "no LA" in loc.detail and loc.max_probability < 0.5
    net = BrightNet()
    crop = Localizer(net, _plan(crop_fov_mm=100.0)).locate(v, SPACING)  # 64 mm wide: a crop
    assert crop.status == CROP and crop.roi == Roi.whole(v.shape) and net.shapes == []


def test_two_stage_runs_stage_2_only_on_the_roi():
    v = torch.as_tensor(_volume())[None, None]
    seen = []

    def stage2(x):
        seen.append(tuple(x.shape))
        return torch.ones(x.shape[0], 2, *x.shape[2:])

    inferer = TwoStageInferer(Localizer(BrightNet(), _plan()))
    out = inferer(v, stage2, spacing=torch.tensor([SPACING], dtype=torch.float64))  # a collated (1, 3) spacing
    roi = inferer.last_location.roi
    assert out.shape == (1, 2, 16, 64, 64)
    inside = torch.zeros(out.shape[2:], dtype=torch.bool)
    inside[roi.slices] = True
    assert torch.all(out[:, :, inside] == 1) and torch.all(out[:, :, ~inside] == BACKGROUND_LOGIT)
    assert {s[2:] for s in seen} == {roi.shape[1:]} and sum(s[0] for s in seen) == roi.shape[0]  # ROI slices only
    none = TwoStageInferer(Localizer(BrightNet(level=5.0), _plan()))(v, stage2, spacing=SPACING)
    assert torch.all(none == BACKGROUND_LOGIT)
    whole = TwoStageInferer(None)(v, stage2)
    assert torch.all(whole == 1)
    with pytest.raises(ValueError, match="one volume at a time"):
        TwoStageInferer(None)(torch.zeros(2, 1, 4, 8, 8), stage2)


def test_localizer_items_and_the_roi_log(caplog):
    label = np.zeros((16, 64, 64), np.uint8)
    label[4:10, 40:56, 8:24] = 1
    label[4:10, 40:42, 8:9] = 2
    case = {"image": _volume(), "label": label, "spacing": np.array(SPACING), "scan": "a"}
    (item,) = localizer_items([case], _plan())
    assert item["image"].shape == item["label"].shape == (1, 8, 16, 16) and set(np.unique(item["label"])) == {0, 1}
    # a coarse voxel holding a quarter of LA is LA: here 2 fine voxels out of 16 * 2 do not count, whole blocks do
    assert item["label"].sum() == 3 * 4 * 4
    caplog.set_level("INFO")
    (row,) = log_rois(Localizer(BrightNet(), _plan()), [case])
    assert row["roi_recall"] == 1.0 and 0 < row["roi_share"] < 0.5 and "ROI recall 1.0000" in caplog.text


# --------------------------------------------------------------------------- a real localiser on whole-FOV phantoms


@pytest.fixture(scope="module")
def tinyfov_cases():
    """Preprocessed tiny whole-field-of-view phantoms (96 x 96 x 16 at 2.5 x 2.5 x 5 mm) and their plan."""
    from bundle.data.phantom import ScanSpec, generate_scan
    from bundle.planning.fingerprint import fingerprint_dataset
    from bundle.planning.planner import plan_decisions
    from bundle.preprocessing.cache import preprocess_case

    scans = [generate_scan(ScanSpec(p, a), "tinyfov", seed=3) for p in range(1, 8) for a in ("pre", "post")]
    plan = {"decisions": plan_decisions(fingerprint_dataset(copy.deepcopy(scans)), "cpu")}
    plan["decisions"]["normalization"]["value"]["clip"] = False
    cases = [{**preprocess_case(c, plan), "scan": c.scan} for c in scans]
    return cases, plan


def test_a_trained_localiser_finds_the_off_centre_la_of_whole_fov_phantoms(tinyfov_cases):
    from monai.losses import DiceCELoss

    from bundle.networks import LocalizerNet

    cases, plan = tinyfov_cases
    train, held_out = cases[:10], cases[10:]
    items = localizer_items(train, plan)
    loc = plan["decisions"]["localizer"]["value"]
    torch.manual_seed(0)
    net = LocalizerNet(loc["widths"], loc["strides"])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = DiceCELoss(sigmoid=True)
    x = torch.stack([torch.as_tensor(i["image"]) for i in items])
    y = torch.stack([torch.as_tensor(i["label"]) for i in items])
    pad = [(-n) % loc["downsampling"] for n in x.shape[2:]]
    x = torch.nn.functional.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
    y = torch.nn.functional.pad(y, (0, pad[2], 0, pad[1], 0, pad[0]))
    for step in range(150):
        idx = torch.randperm(len(items))[:4]
        opt.zero_grad()
        loss_fn(net(x[idx]), y[idx]).backward()
        opt.step()
    locator = Localizer(net, plan)
    for case in held_out:
        la = case["label"] > 0
        found = locator.locate(case["image"], case["spacing"])
        assert found.status == OK, found.detail
        assert found.roi.recall(la) >= 0.99, (case["scan"], found.roi, found.roi.recall(la))
        assert found.roi.fraction_of(la.shape) < 0.5  # a region, not the whole scan
        centre = np.array([(a + b) / 2 for a, b in zip(found.roi.start[1:], found.roi.stop[1:])])
        assert np.abs(centre - np.array(la.shape[1:]) / 2).max() > 8  # the LA is off-centre, and so is its ROI
