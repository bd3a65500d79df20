"""bundle.inference.localizer and bundle.inference.two_stage: the coarse grid, locating with stand-in networks, the
plausible LA among other structures, the wider search and its reasons, stage 2 only on the ROI and the ROI grown where
the LA leaves it, and a real LocalizerNet trained on tiny whole-field-of-view phantoms finding their off-centre LA."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from bundle.inference.localizer import (
    CROP,
    LA_ML_LITERATURE,
    NO_LA,
    SEARCHED,
    WIDENED,
    WIDER_THRESHOLDS,
    LaRange,
    Localizer,
    coarse_shape,
    largest_component,
    to_coarse,
)
from bundle.inference.two_stage import BACKGROUND_LOGIT, TwoStageInferer, window_starts
from bundle.preprocessing.roi import Roi
from bundle.quantification.qc import OK
from bundle.training.datasets import localizer_items
from bundle.training.validation import log_rois

SPACING = (1.0, 1.0, 2.0)  # x, y, z


TOY_LA = {"la_ml": 3.0, "la_extent_mm": [16.0, 16.0, 12.0]}
"""The fingerprint of a plan whose LAs are the size of :func:`_volume`'s block (16 x 16 x 12 mm, 3 ml)."""


def _plan(spacing=(4.0, 4.0, 4.0), downsampling=4, margin_mm=4.0, multiple=8, crop_fov_mm=0.0,
          cases=(TOY_LA,)) -> dict:
    """A plan of the localiser and ROI decisions, and a fingerprint of ``cases`` (None: no fingerprint)."""
    plan = {"decisions": {
        "localizer": {"value": {"spacing": list(spacing), "downsampling": downsampling, "patch_size": [8, 16, 16],
                                "widths": [4, 8, 16], "strides": [2, 2]}},
        "roi": {"value": {"margin_mm": margin_mm, "multiple": multiple, "crop_fov_mm": crop_fov_mm}},
    }}
    if cases is not None:
        plan["fingerprint"] = {"cases": [dict(c) for c in cases]}
    return plan


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


def test_a_scan_shorter_than_the_patch_is_padded_about_its_centre_as_in_training():
    """A 2018-challenge stack covers 55 mm: on the coarse grid fewer slices than the localiser's patch. Training pads
    such scans symmetrically with replicated edges (SpatialPadd), so inference does too, and maps back."""
    v = _volume()[5:9]  # 4 slices of 2 mm: 2 coarse slices, the patch has 8
    net = BrightNet()
    localizer = Localizer(net, _plan())
    prob = localizer.probabilities(v, SPACING)
    assert net.shapes == [(1, 1, 8, 16, 16)] and prob.shape == (2, 16, 16)
    assert prob[:, 10:14, 2:6].min() > 0.99 and prob[:, :8].max() < 0.01  # the block, in place
    loc = localizer.locate(v, SPACING)
    truth = np.zeros(v.shape, bool)
    truth[:, 40:56, 8:24] = True
    assert loc.roi is not None and loc.roi.recall(truth) == 1.0


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

    inferer = TwoStageInferer(Localizer(BrightNet(), _plan()), roi_growths=0)  # growth: tests below
    out = inferer(v, stage2, spacing=torch.tensor([SPACING], dtype=torch.float64))  # a collated (1, 3) spacing
    roi = inferer.last_location.roi
    assert out.shape == (1, 2, 16, 64, 64)
    inside = torch.zeros(out.shape[2:], dtype=torch.bool)
    inside[roi.slices] = True
    assert torch.all(out[:, :, inside] == 1) and torch.all(out[:, :, ~inside] == BACKGROUND_LOGIT)
    assert {s[2:] for s in seen} == {roi.shape[1:]} and sum(s[0] for s in seen) == roi.shape[0]  # ROI slices only
    none = TwoStageInferer(Localizer(BrightNet(level=5.0), _plan()), scan_search=False)(v, stage2, spacing=SPACING)
    assert torch.all(none == BACKGROUND_LOGIT)  # stage 1 found nothing (its last resort, stage 2's search: below)
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


# --------------------------------------------------------------------------- the plausible LA and the wider search

COARSE_MM = 4.5
"""The stand-in scans below lie on the localiser's grid (so ``to_coarse`` leaves them as they are)."""
SCAN_ZYX = (30, 80, 80)  # 135 x 360 x 360 mm: a whole field of view


class MapNet(torch.nn.Module):
    """A stand-in stage 1 that answers a chosen coarse probability map, whatever the scan."""

    def __init__(self, prob: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.logit(torch.as_tensor(prob, dtype=torch.float32).clamp(1e-4, 1 - 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.full(x.shape, -10.0)
        out[0, 0, : self.logits.shape[0], : self.logits.shape[1], : self.logits.shape[2]] = self.logits
        return out


def _ellipsoid(centre_zyx, radii_mm_zyx) -> np.ndarray:
    """An ellipsoid (centre in voxels, radii in mm) on the coarse grid of :data:`SCAN_ZYX`."""
    grid = np.indices(SCAN_ZYX, dtype=np.float64)
    return sum(((g - c) * COARSE_MM / r) ** 2 for g, c, r in zip(grid, centre_zyx, radii_mm_zyx)) <= 1.0


def _structures() -> dict[str, np.ndarray]:
    """An LA-like blob (about 110 ml, 70 x 60 x 50 mm), an aorta-like tube (40 mm across, through all 135 mm of
    the scan: about 170 ml) and a body-wall-like slab (over 1 litre), far apart on the coarse grid."""
    aorta = np.zeros(SCAN_ZYX, bool)
    yy, xx = np.indices(SCAN_ZYX[1:])
    aorta[:] = ((yy - 40) ** 2 + (xx - 64) ** 2) * COARSE_MM**2 <= 20.0**2
    body = np.zeros(SCAN_ZYX, bool)
    body[:, 60:78, 2:32] = True  # off the in-plane border: its volume alone rules it out
    return {"la": _ellipsoid((15, 40, 24), (25, 30, 35)), "aorta": aorta, "body": body}


def _locate(prob: np.ndarray, cases=None):
    """Stage 1 with a :class:`MapNet` of ``prob`` on a whole scan of :data:`SCAN_ZYX` (a plan fingerprint of
    ``cases``; None: the literature's LA range)."""
    locator = Localizer(MapNet(prob), _plan(spacing=(COARSE_MM,) * 3, downsampling=1, cases=cases))
    return locator.locate(np.zeros(SCAN_ZYX, np.float32), (COARSE_MM,) * 3)


@pytest.mark.parametrize("distractor", ["aorta", "body"])
def test_the_plausible_la_wins_over_a_larger_implausible_structure(distractor):
    s = _structures()
    prob = np.where(s["la"], 0.8, 0.02) + 0.95 * s[distractor]
    assert largest_component(prob > 0.5)[s[distractor]].all()  # what the largest component alone would pick
    loc = _locate(prob)
    assert loc.status == OK, loc.detail
    assert loc.roi.recall(s["la"]) == 1.0 and loc.roi.recall(s[distractor]) == 0.0
    assert loc.candidate.ml == pytest.approx(s["la"].sum() * COARSE_MM**3 / 1000) and 90 < loc.candidate.ml < 130
    assert loc.candidate.max_probability == pytest.approx(0.8, abs=1e-3) and loc.candidate.members == 1
    assert loc.candidate.border == () and "LA found" in loc.detail


def test_a_weak_la_is_found_by_the_wider_search():
    la = _structures()["la"]
    loc = _locate(np.where(la, 0.35, 0.05))
    assert loc.status == WIDENED and loc.candidate.threshold == WIDER_THRESHOLDS[0]
    assert loc.roi.recall(la) == 1.0 and loc.max_probability == pytest.approx(0.35, abs=1e-3)
    assert "wider search at p > 0.3" in loc.detail and "no component of p > 0.5" in loc.detail


def test_an_la_cut_in_two_is_found_merged():
    la = _ellipsoid((15, 40, 40), (15, 18, 25))  # about 28 ml; each half alone is under the 17 ml bound
    gap = np.zeros(SCAN_ZYX, bool)
    gap[:, :, 40] = True  # a plane of low probability cuts it (a vein's neck under every threshold)
    loc = _locate(np.where(la & ~gap, 0.9, 0.02))
    assert loc.status == WIDENED and loc.candidate.members == 2 and loc.candidate.threshold == 0.5
    assert loc.roi.recall(la) == 1.0
    assert "2 components merged" in loc.detail and "ml outside 17-375 ml" in loc.detail  # the halves, rejected


def test_only_implausible_structures_give_no_la_with_the_reasons():
    s = _structures()
    loc = _locate(0.95 * (s["aorta"] | s["body"]) + 0.01)
    assert loc.status == NO_LA and loc.roi is None and loc.candidate is None
    assert "found no LA" in loc.detail and "p > 0.5, 0.3, 0.15" in loc.detail
    assert "longest/shortest extent 3." in loc.detail  # the aorta: 135 mm long, 40-45 mm across
    assert "ml outside 17-375 ml" in loc.detail and "at the scan's z-/z+ border" in loc.detail  # the body: over 1 l
    assert "at p > 0.3" not in loc.detail  # the same two structures at the lower thresholds are not named again
    assert "a plausible LA is 17-375 ml" in loc.detail


def test_the_la_range_joins_the_plan_and_the_literature():
    literature = LaRange.from_plan({})
    assert literature == LaRange() and literature.ml[0] < LA_ML_LITERATURE[0] < LA_ML_LITERATURE[1] < literature.ml[1]
    huge = {"la_ml": 600.0, "la_extent_mm": [170.0, 120.0, 100.0]}
    wide = LaRange.from_plan(_plan(cases=[huge, TOY_LA]))
    assert wide.ml[0] < TOY_LA["la_ml"] and wide.ml[1] > 600 and wide.longest_mm > 170 and wide.shortest_mm < 12
    assert wide.ml[0] < literature.ml[0] and wide.ml[1] > literature.ml[1]  # never narrower than the literature
    from conftest import REPO

    from bundle.planning.planner import load_plan

    plan = load_plan(REPO / "plans" / "phantom.json")
    phantom = LaRange.from_plan(plan)
    for case in plan["fingerprint"]["cases"]:
        e = sorted(case["la_extent_mm"])
        assert phantom.ml[0] < case["la_ml"] < phantom.ml[1] and phantom.shortest_mm < e[0] < e[-1] < phantom.longest_mm
        assert e[-1] / e[0] < phantom.elongation


# --------------------------------------------------------------------------- the ROI grows where stage 2's LA leaves it


def _veined_volume(vein_to: int) -> np.ndarray:
    """(z, y, x) = (12, 64, 96) at 1 x 1 x 2 mm: an 'LA' block and a vein 2 pixels wide running along +x from it
    to ``vein_to``, too thin for the 4 mm coarse grid (stage 1 sees the block only)."""
    v = np.zeros((12, 64, 96), np.float32)
    v[4:8, 24:40, 16:32] = 1.0
    v[5:7, 31:33, 32:vein_to] = 1.0
    return v


VEINED_LA = {"la_ml": 2.0, "la_extent_mm": [16.0, 16.0, 8.0]}
"""The fingerprint of a plan whose LAs are the size of :func:`_veined_volume`'s block."""


def sign_net(x: torch.Tensor) -> torch.Tensor:
    """A stand-in stage 2: LA wherever the ROI-z-scored intensity is above the ROI's mean, never scar."""
    return torch.cat([20 * x, torch.full_like(x, -20.0)], dim=1)


def _grow(vein_to: int, growths: int, margin_mm: float = 4.0, multiple: int = 1):
    """Both stages on :func:`_veined_volume`; returns stage 1's ROI, the final location and the logits."""
    v = torch.as_tensor(_veined_volume(vein_to))[None, None]
    plan = _plan(margin_mm=margin_mm, multiple=multiple, cases=[VEINED_LA])
    first = Localizer(BrightNet(), plan).locate(v[0, 0], SPACING)
    inferer = TwoStageInferer(Localizer(BrightNet(), plan), roi_growths=growths)
    out = inferer(v, sign_net, spacing=SPACING)
    return first, inferer.last_location, out


def test_the_roi_grows_where_the_la_leaves_it():
    first, final, out = _grow(vein_to=38, growths=3)
    assert first.roi == Roi((2, 20, 12), (10, 44, 36))  # the block plus 4 mm: the vein (to x 38) leaves it at x+
    assert final.roi == Roi((2, 20, 12), (10, 44, 40))  # grown once by the margin on that side only
    assert final.status == OK and "ROI grown 1 time(s) by the 4 mm margin" in final.detail and "(x+)" in final.detail
    truth = torch.as_tensor(_veined_volume(38) > 0)
    assert torch.equal(out[0, 0] > 0, truth)  # the pasted LA holds the whole vein
    cut, _, cut_out = _grow(vein_to=38, growths=0)
    assert cut.roi == first.roi and not torch.equal(cut_out[0, 0] > 0, truth)  # without growth the box cuts it


def test_the_roi_growth_stops_at_the_image_border_and_at_its_limit():
    _, final, out = _grow(vein_to=96, growths=20)  # the vein runs to the image's x border
    assert final.roi == Roi((2, 20, 12), (10, 44, 96)) and "15 time(s)" in final.detail  # (96 - 36) / 4 growths
    assert torch.equal(out[0, 0] > 0, torch.as_tensor(_veined_volume(96) > 0))
    _, limited, _ = _grow(vein_to=96, growths=2)
    assert limited.roi == Roi((2, 20, 12), (10, 44, 44)) and "2 time(s)" in limited.detail
    _, snapped, _ = _grow(vein_to=96, growths=1, multiple=8)
    assert snapped.roi.shape[1] % 8 == 0 and snapped.roi.shape[2] % 8 == 0 and snapped.roi.stop[2] >= 36 + 4


def test_no_growth_when_the_la_is_already_larger_than_any_plausible_la():
    v = torch.as_tensor(_veined_volume(96))[None, None]
    localizer = Localizer(BrightNet(), _plan(cases=[VEINED_LA]))
    whole_roi = localizer.locate(v[0, 0], SPACING).roi
    everywhere = lambda x: torch.ones(x.shape[0], 2, *x.shape[2:])  # stage 2 labels the whole ROI: 9.2 ml
    inferer = TwoStageInferer(localizer, roi_growths=2)
    localizer.la_range = dataclasses.replace(localizer.la_range, ml=(1.0, 5.0))  # the 2 ml block is plausible
    inferer(v, everywhere, spacing=SPACING)
    assert inferer.last_location.roi == whole_roi and "grown" not in inferer.last_location.detail
    localizer.la_range = dataclasses.replace(localizer.la_range, ml=(1.0, 20.0))  # 9.2 ml can be an LA: it grows
    inferer(v, everywhere, spacing=SPACING)  # on every inner side, once: then 24.6 ml, over 20 ml, stops it
    final = inferer.last_location
    assert "ROI grown 1 time(s)" in final.detail and "(z-/z+/y-/y+/x-/x+)" in final.detail
    assert final.roi == Roi((0, 16, 8), (12, 48, 40))  # 4 mm more on every side (z: the image's)


# --------------------------------------------------------------------------- stage 2 checks stage 1's choice


def _guessing(la_in_image: bool = True, distractor: bool = True) -> tuple[torch.Tensor, np.ndarray, Localizer]:
    """A (16, 64, 96) scan at 1 x 1 x 2 mm whose image holds a bright 'LA' block (2 ml) or nothing, and a stage 1 that
    answers a fixed 4 mm map: with ``distractor``, a plausible 6 ml structure far from the LA (p 0.9, in a 0.4 halo
    that makes a larger plausible component at p > 0.3), and always one coarse voxel of the LA (p 0.9, too small to
    pass); returns the image (1, 1, Z, Y, X), the LA mask and the localiser."""
    v = np.zeros((16, 64, 96), np.float32)
    la = np.zeros(v.shape, bool)
    la[6:10, 24:40, 16:32] = True
    if la_in_image:
        v[la] = 1.0
    prob = np.full((8, 16, 24), 0.01, np.float32)
    if distractor:
        prob[0:6, 1:6, 13:23] = 0.4
        prob[1:5, 2:5, 14:22] = 0.9
    prob[4, 8, 6] = 0.9  # a piece of the LA (coarse z 3:5, y 6:10, x 4:8)
    return torch.as_tensor(v)[None, None], la, Localizer(MapNet(prob), _plan(cases=[VEINED_LA]))


class CountingNet:
    """:func:`sign_net` counting its calls (one per stage-2 pass over a ROI of at most 8 slices)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return sign_net(x)


def test_stage_2_refutes_stage_1s_choice_and_finds_the_la_in_its_next_guess():
    v, la, localizer = _guessing()
    first = localizer.locate(v[0, 0], SPACING)
    assert first.status == OK and first.roi.recall(la) == 0.0  # stage 1 chose the distractor
    assert [g.candidate.ml for g in first.next_guesses] == pytest.approx([19.2, 0.064])  # halo (p > 0.3, 0.15), piece
    inferer = TwoStageInferer(localizer, roi_growths=3)
    out = inferer(v, sign_net, spacing=SPACING)
    final = inferer.last_location
    assert final.status == WIDENED and final.roi.recall(la) == 1.0
    assert torch.equal(out[0, 0] > 0, torch.as_tensor(la))
    assert "stage 2 found no plausible LA (at least 1 ml) in stage 1's choice (0.0 ml);" in final.detail
    assert "stage 1's guess at p > 0.5: 0 ml" in final.detail and "ROI grown" in final.detail
    assert "a guess of 19 ml" not in final.detail  # the halo holds the refuted choice: not segmented again


def test_stage_2_checks_stage_1s_guesses_when_stage_1_found_no_la():
    v, la, localizer = _guessing(distractor=False)
    assert localizer.locate(v[0, 0], SPACING).status == NO_LA
    inferer = TwoStageInferer(localizer, roi_growths=3)
    out = inferer(v, sign_net, spacing=SPACING)
    assert inferer.last_location.status == WIDENED and torch.equal(out[0, 0] > 0, torch.as_tensor(la))
    detail = inferer.last_location.detail
    assert detail.startswith("stage 1 found no LA: no plausible LA among") and "stage 1's guess at p > 0.5" in detail
    assert "stage 2 found no plausible LA" not in detail  # nothing stage 2 segmented was refuted


@pytest.mark.parametrize("distractor", [True, False])
def test_without_an_la_in_any_guess_the_scan_is_no_la_and_says_why(distractor):
    v, la, localizer = _guessing(la_in_image=False, distractor=distractor)
    inferer = TwoStageInferer(localizer, roi_growths=3)
    out = inferer(v, sign_net, spacing=SPACING)
    final = inferer.last_location
    # a refuted stage-1 choice is not the scan's LA: no_la, no ROI, background everywhere, never `ok` with 0 ml
    assert final.status == NO_LA and final.roi is None and (out == BACKGROUND_LOGIT).all()
    assert final.detail.startswith("stage 1's choice: LA found: 6 ml" if distractor else "stage 1 found no LA")
    refuted = "stage 1's choice (0.0 ml), a guess of 0 ml (0.0 ml)" if distractor else "a guess of 0 ml (0.0 ml)"
    searched = ("its search of the whole field of view (1 window(s) of 64 x 96 voxels on every 2nd slice: no "
                "component of p > 0.5)")  # without a context, one window: the whole slice
    assert final.detail.endswith(f"stage 2 found no plausible LA (at least 1 ml) in {refuted}, {searched}")


def test_a_stage_2_la_below_the_plausible_volume_is_no_la():
    """Stage 2 segments something in stage 1's ROI, but less than any plausible LA: the scan is no_la."""
    v, la, localizer = _guessing(la_in_image=True, distractor=False)
    localizer.la_range = dataclasses.replace(localizer.la_range, ml=(5.0, 20.0))  # the 2 ml block is too small
    inferer = TwoStageInferer(localizer, roi_growths=3, scan_search=False)
    out = inferer(v, sign_net, spacing=SPACING)
    final = inferer.last_location
    assert final.status == NO_LA and final.roi is None and (out == BACKGROUND_LOGIT).all()
    assert "stage 2 found no plausible LA (at least 5 ml) in a guess of 0 ml (2.0 ml)" in final.detail


def test_stage_2_checks_at_most_max_guesses(monkeypatch):
    import bundle.inference.two_stage as two_stage

    v, la, localizer = _guessing(la_in_image=False, distractor=False)
    pieces = np.full((8, 16, 24), 0.01, np.float32)
    pieces[1:7:2, 2:15:3, 2:23:5] = 0.9  # 3 x 5 x 5 = 75 separate single-voxel pieces
    localizer.network = MapNet(pieces)
    monkeypatch.setattr(two_stage, "MAX_GUESSES", 2)
    net = CountingNet()
    inferer = TwoStageInferer(localizer, roi_growths=0, scan_search=False)
    inferer(v, net, spacing=SPACING)  # each piece's ROI: 2 slices and 2 of margin on each side, one call
    assert net.calls == 2 and inferer.last_location.status == NO_LA
    assert inferer.last_location.detail.endswith("in a guess of 0 ml (0.0 ml), a guess of 0 ml (0.0 ml)")


# --------------------------------------------------------------------------- stage 2 searches what stage 1 missed


def test_search_windows_cover_the_axis_with_half_a_window_of_overlap():
    assert window_starts(100, 40) == [0, 20, 40, 60]
    assert window_starts(90, 40) == [0, 20, 40, 50]  # the last window ends at the axis's end
    assert window_starts(64, 128) == [0] and window_starts(40, 40) == [0]
    assert window_starts(10, 4, overlap=0.0) == [0, 4, 6]


def _missed(tube: bool = False) -> tuple[torch.Tensor, np.ndarray, Localizer]:
    """The scan of :func:`_guessing` (its 2 ml 'LA' block) with a stage 1 that sees nothing at all, and with
    ``tube`` a bright 'aorta' 8 x 8 pixels across through every slice (8 x 8 x 32 mm, 2 ml: too elongated for an LA)."""
    v, la, _ = _guessing(distractor=False)
    if tube:
        v[0, 0, :, 48:56, 70:78] = 1.0
    localizer = Localizer(MapNet(np.full((8, 16, 24), 0.01, np.float32)), _plan(cases=[VEINED_LA]))
    return v, la, localizer


@pytest.mark.parametrize("tube", [False, True])
def test_stage_2_searches_the_whole_field_of_view_when_stage_1_missed_the_la(tube):
    v, la, localizer = _missed(tube)
    first = localizer.locate(v[0, 0], SPACING)
    assert first.status == NO_LA and not first.next_guesses  # nothing for stage 2 to check
    inferer = TwoStageInferer(localizer, roi_growths=3, context=(32, 32))
    net = CountingNet()
    out = inferer(v, net, spacing=SPACING)
    final = inferer.last_location
    assert final.status == SEARCHED and final.roi.recall(la) == 1.0
    assert torch.equal(out[0, 0] > 0, torch.as_tensor(la))  # the final pass: every slice of the found ROI
    assert final.detail.startswith("stage 1 found no LA")
    assert ("LA found by stage 2's search of the whole field of view (15 window(s) of 32 x 32 voxels on every 2nd "
            "slice): 2 ml, 16 x 16 x 8 mm (x, y, z)") in final.detail  # y starts 0, 16, 32; x 0, 16, ..., 64
    assert final.candidate.ml == pytest.approx(2.048)  # 2 searched slices of 4 mm, 16 x 16 pixels
    assert net.calls >= 15 + 1  # every window, then the LA's ROI
    missed = TwoStageInferer(localizer, roi_growths=3, context=(32, 32), scan_search=False)
    assert torch.all(missed(v, sign_net, spacing=SPACING) == BACKGROUND_LOGIT)
    assert missed.last_location.status == NO_LA


def test_a_2_5d_stage_2_searches_with_neighbours_among_the_searched_slices():
    v, la, localizer = _missed()
    seen = []

    def centre_net(x: torch.Tensor) -> torch.Tensor:  # a 2.5D stand-in: 3 channels in, the centre slice decides
        seen.append(x.shape[1])
        return sign_net(x[:, 1:2])

    inferer = TwoStageInferer(localizer, roi_growths=3, context=(32, 32), neighbour_mm=2.0)
    out = inferer(v, centre_net, spacing=SPACING)
    assert inferer.last_location.status == SEARCHED and torch.equal(out[0, 0] > 0, torch.as_tensor(la))
    assert set(seen) == {3}


def test_the_search_refutes_what_is_no_la_and_a_crop_is_never_searched():
    v, la, localizer = _missed(tube=True)
    v[0, 0][la] = 0.0  # the aorta alone
    inferer = TwoStageInferer(localizer, context=(32, 32))
    assert torch.all(inferer(v, sign_net, spacing=SPACING) == BACKGROUND_LOGIT)
    final = inferer.last_location
    assert final.status == NO_LA and final.roi is None
    assert final.detail.endswith("its search of the whole field of view (15 window(s) of 32 x 32 voxels on every 2nd "
                                 "slice: the largest component 2 ml, 8 x 8 x 32 mm (x, y, z), p mean 1.00 max 1.00, "
                                 "at the scan's z-/z+ border: longest/shortest extent 4.0 over 3.0)")
    crop_plan = _plan(cases=[VEINED_LA], crop_fov_mm=500.0)  # every scan narrower than 500 mm is a crop
    net = CountingNet()
    crop = TwoStageInferer(Localizer(MapNet(np.zeros((8, 16, 24), np.float32)), crop_plan), context=(32, 32))
    crop(v, net, spacing=SPACING)
    assert crop.last_location.status == CROP and net.calls == 2  # the whole crop's 16 slices once: nothing searched
    # with LAs of at least 5 ml its 2 ml aorta is no LA: the crop is no_la, with the reason, and nothing else is tried
    crop.localizer.la_range = dataclasses.replace(crop.localizer.la_range, ml=(5.0, 375.0))
    assert torch.all(crop(v, net, spacing=SPACING) == BACKGROUND_LOGIT) and net.calls == 4
    assert crop.last_location.status == NO_LA and crop.last_location.roi is None
    assert crop.last_location.detail.startswith("a crop around the LA")
    assert crop.last_location.detail.endswith("stage 2 found no plausible LA (at least 5 ml) in the crop (2.0 ml)")


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
        where = np.argwhere(la)[:, 1:]
        la_centre = (where.min(0) + where.max(0) + 1) / 2
        scan_centre = np.array(la.shape[1:]) / 2
        assert np.abs(la_centre - scan_centre).max() > 8  # the LA is off-centre ...
        # ... and the ROI follows it: nearer the LA's centre than the scan's centre is
        assert np.linalg.norm(centre - la_centre) < np.linalg.norm(scan_centre - la_centre), (case["scan"], found.roi)
