"""bundle.preprocessing.roi: the box stage 1 hands to stage 2 (margins, snapping, image borders, coarse to fine, world)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.planning.planner import is_crop
from bundle.preprocessing.roi import Roi, mask_box, roi_from_box, roi_from_coarse_mask


def test_box_gets_its_margin_in_mm_on_every_side():
    roi = roi_from_box((10, 100, 200), (20, 160, 280), (44, 576, 576), (0.625, 0.625, 2.5), margin_mm=5.0)
    # 5 mm = 2 slices of 2.5 mm, 8 pixels of 0.625 mm
    assert roi == Roi((8, 92, 192), (22, 168, 288))
    assert roi.shape == (14, 76, 96)


def test_in_plane_size_is_snapped_to_the_down_sampling_about_the_centre():
    roi = roi_from_box((10, 100, 200), (20, 160, 280), (44, 576, 576), (0.625, 0.625, 2.5), 5.0, multiple=16)
    assert roi.shape[1] % 16 == 0 and roi.shape[2] % 16 == 0
    assert roi.shape == (14, 80, 96)  # z is never snapped: stage 2 runs slice by slice
    assert roi.start[1] <= 92 and roi.stop[1] >= 168  # still holds the box plus its margin


@pytest.mark.parametrize("corner", ["low", "high"])
def test_a_box_at_the_image_border_is_shifted_inside_keeping_its_size(corner):
    shape = (20, 100, 120)
    lo, hi = ((0, 0, 0), (5, 30, 30)) if corner == "low" else ((15, 70, 90), (20, 100, 120))
    roi = roi_from_box(lo, hi, shape, (1.0, 1.0, 2.0), margin_mm=4.0, multiple=16)
    assert all(0 <= a < b <= n for a, b, n in zip(roi.start, roi.stop, shape))
    assert roi.shape[1] == 48 and roi.shape[2] == 48  # 30 + 2 * 4 = 38 -> 48, room made on the open side
    mask = np.zeros(shape, bool)
    mask[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))] = True
    assert roi.recall(mask) == 1.0


def test_an_image_smaller_than_the_multiple_gives_the_whole_image():
    roi = roi_from_box((0, 2, 2), (3, 10, 9), (3, 12, 11), (1.0, 1.0, 1.0), margin_mm=5.0, multiple=16)
    assert roi == Roi.whole((3, 12, 11))
    assert roi.fraction_of((3, 12, 11)) == 1.0


def test_coarse_mask_maps_to_the_fine_grid():
    coarse = np.zeros((10, 20, 20), bool)
    coarse[2:5, 6:9, 10:14] = True  # coarse voxels 4x finer in-plane, 2x along z on the fine grid
    roi = roi_from_coarse_mask(coarse, (20, 80, 80), (1.0, 1.0, 2.0), margin_mm=0.0)
    assert roi == Roi((4, 24, 40), (10, 36, 56))
    assert roi_from_coarse_mask(np.zeros((4, 4, 4), bool), (8, 8, 8), (1, 1, 1), 2.0) is None


def test_recall_share_and_scaling():
    mask = np.zeros((4, 10, 10), bool)
    mask[1:3, 2:6, 2:6] = True
    roi = Roi((0, 0, 0), (4, 10, 4))
    assert roi.recall(mask) == pytest.approx(0.5)
    assert roi.recall(np.zeros_like(mask)) == 1.0
    assert roi.fraction_of(mask.shape) == pytest.approx(0.4)
    assert roi.scaled((1, 2, 2), (4, 20, 20)) == Roi((0, 0, 0), (4, 20, 8))
    assert roi.scaled((1, 0.5, 0.5), (4, 5, 5)) == Roi((0, 0, 0), (4, 5, 2))
    assert mask_box(mask) == ((1, 2, 2), (3, 6, 6)) and mask_box(np.zeros((2, 2, 2), bool)) is None


def test_world_corners_follow_the_image_geometry():
    image = sitk.Image(10, 8, 6, sitk.sitkUInt8)  # x, y, z
    image.SetSpacing((0.5, 0.5, 2.0))
    image.SetOrigin((100.0, -20.0, 5.0))
    image.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))  # RAS-stored axes
    world = Roi((1, 2, 3), (3, 4, 7)).world(image)
    # x: indices 3..7 -> faces 2.5 .. 6.5 -> 100 - 0.5 * [2.5, 6.5]; y: 2..4 -> -20 - 0.5 * [1.5, 3.5];
    # z: 1..3 -> faces 0.5 .. 2.5 -> 5 + 2 * [0.5, 2.5]
    assert world["min"] == pytest.approx([96.75, -21.75, 6.0])
    assert world["max"] == pytest.approx([98.75, -20.75, 10.0])


def test_crops_are_narrow_along_both_in_plane_axes():
    assert is_crop((19, 166, 214), (0.625, 0.625, 2.5), 172.0)  # the CARMA crop: 134 x 104 mm
    assert not is_crop((44, 576, 576), (0.625, 0.625, 2.5), 172.0)  # a whole MICCAI 2018 scan: 360 mm
    assert not is_crop((44, 166, 576), (0.625, 0.625, 2.5), 172.0)  # wide along x


def _phantom_plan() -> dict:
    from conftest import REPO

    from bundle.planning.planner import load_plan

    return load_plan(REPO / "plans" / "phantom.json")


@pytest.mark.parametrize("pad_px", [3, 10, 20], ids=["tight-utah-style", "box+10px", "box+20px"])
def test_crops_around_each_planned_la_are_crops_with_all_their_slices(pad_px):
    """Each of plans/phantom.json's LAs cut out as a crop would be (its box plus ``pad_px`` pixels in-plane, all
    slices, at the scan's own spacing): stage 1 is skipped for it under the plan's own ``roi`` decision; the phantoms
    that are whole fields of view (over 300 mm) are not crops, those shipped as crops are."""
    plan = _phantom_plan()
    crop_fov = plan["decisions"]["roi"]["value"]["crop_fov_mm"]
    for case in plan["fingerprint"]["cases"]:
        lo, hi = case["la_bbox_voxel"]["min"], case["la_bbox_voxel"]["max"]  # x, y, z, inclusive
        size_xy = [min(n, b - a + 1 + 2 * pad_px) for a, b, n in zip(lo[:2], hi[:2], case["shape"][:2])]
        shape_zyx = (case["shape"][2], size_xy[1], size_xy[0])
        assert shape_zyx[0] == case["shape"][2]
        assert is_crop(shape_zyx, case["spacing"], crop_fov), (case["scan"], shape_zyx)
        fov = [n * s for n, s in zip(case["shape"][:2], case["spacing"][:2])]
        assert is_crop(tuple(case["shape"][::-1]), case["spacing"], crop_fov) == (max(fov) < 300), case["scan"]


@pytest.mark.parametrize("shape_zyx, crop", [
    ((44, 576, 576), False),  # a whole MICCAI 2018 field of view: 360 mm
    ((88, 640, 640), False),  # a whole 640 x 640 field of view: 400 mm
    ((44, 166 + 40, 166 + 40), True),  # the longest adult LA label (104 mm = 166 px) plus 20 pixels each side
    ((44, 166 + 6, 166 + 6), True),  # the same, tight (Utah style)
])
def test_the_plans_crop_rule_on_whole_fields_of_view_and_large_las(shape_zyx, crop):
    from bundle.inference.localizer import LA_LONGEST_MM_LITERATURE

    assert round(LA_LONGEST_MM_LITERATURE / 0.625) == 166
    crop_fov = _phantom_plan()["decisions"]["roi"]["value"]["crop_fov_mm"]
    assert is_crop(shape_zyx, (0.625, 0.625, 2.5), crop_fov) is crop


def test_inner_sides_and_growing_a_box():
    shape = (20, 100, 120)
    roi = Roi((0, 30, 40), (10, 62, 72))
    assert roi.inner_sides(shape) == [(0, True), (1, False), (1, True), (2, False), (2, True)]  # z start: the image's
    assert Roi.whole(shape).inner_sides(shape) == []
    grown = roi.grown((0, 0, 0), (0, 0, 6.4), shape)  # 6.4 voxels on the high-x side only
    assert grown == Roi((0, 30, 40), (10, 62, 79))
    snapped = roi.grown((0, 0, 0), (0, 0, 6.4), shape, multiple=16)
    assert snapped.shape == (10, 32, 48) and snapped.start[2] <= 40 and snapped.stop[2] >= 79  # holds box + pad
    assert snapped.start[:2] == roi.start[:2] and snapped.stop[:2] == roi.stop[:2]  # other axes untouched
    edge = Roi((0, 30, 100), (10, 62, 116)).grown((0, 0, 0), (0, 0, 10), shape, multiple=16)
    assert edge == Roi((0, 30, 88), (10, 62, 120))  # at the image border: shifted inside, size still 32
    assert roi.grown((3, 0, 0), (0, 0, 0), shape) == roi  # z start is already the image's border


def test_stage_2_sees_the_roi_z_scored_with_its_own_moments():
    import torch

    from bundle.inference.two_stage import TwoStageInferer
    from bundle.preprocessing.roi import roi_moments

    seen = []

    def network(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.zeros(x.shape[0], 2, *x.shape[2:])

    rng = np.random.default_rng(0)
    volume = torch.as_tensor(rng.normal(50, 5, (1, 1, 6, 32, 40)).astype(np.float32))
    volume[..., :, :, 30:] += 500  # far from the ROI: changes the scan's moments, not the ROI's
    roi = Roi((1, 4, 2), (5, 20, 26))
    TwoStageInferer(batch_size=8).segment_roi(volume, network, roi)
    inside = torch.cat(seen)  # (z, 1, y, x) slices of the ROI
    assert tuple(inside.shape) == (4, 1, 16, 24)
    assert abs(float(inside.mean())) < 1e-5 and abs(float(inside.std()) - 1) < 1e-4
    mean, std = roi_moments(volume, roi)
    np.testing.assert_allclose(inside[:, 0].numpy(), ((volume[0, 0][roi.slices] - mean) / std).numpy(), atol=1e-5)


def test_widening_a_box_to_a_patch_about_its_centre():
    shape = (10, 64, 80)
    roi = Roi((2, 20, 30), (8, 36, 46))
    wide = roi.widened_to((32, 48), shape)
    assert wide.shape == (6, 32, 48) and wide.start[0] == 2  # z unchanged
    assert wide.start[1] <= 20 and wide.stop[1] >= 36 and wide.start[2] <= 30 and wide.stop[2] >= 46
    assert roi.widened_to((8, 8), shape) == roi  # already wider
    assert Roi((0, 0, 0), (4, 10, 12)).widened_to((32, 48), shape).start[1:] == (0, 0)  # shifted inside
    assert roi.widened_to((100, 100), shape).shape[1:] == (64, 80)  # never past the image


def test_stage_2_sees_a_patch_wide_window_z_scored_with_the_roi_moments():
    import torch

    from bundle.inference.two_stage import TwoStageInferer
    from bundle.preprocessing.roi import roi_moments

    seen = []

    def network(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.cat([x, -x], dim=1)  # logits that show where each pixel came from

    rng = np.random.default_rng(1)
    volume = torch.as_tensor(rng.normal(50, 5, (1, 1, 6, 64, 64)).astype(np.float32))
    volume[..., :, :, :8] += 500  # outside the ROI and outside the window
    roi = Roi((1, 24, 24), (5, 40, 40))
    logits = TwoStageInferer(batch_size=8, context=(32, 32)).segment_roi(volume, network, roi)
    window = torch.cat(seen)
    assert tuple(window.shape) == (4, 1, 32, 32)  # the 16 x 16 ROI seen within a 32 x 32 window
    mean, std = roi_moments(volume, roi)
    expected = (volume[0, 0][roi.slices] - mean) / std
    assert tuple(logits.shape) == (1, 2, 4, 16, 16)
    np.testing.assert_allclose(logits[0, 0].numpy(), expected.numpy(), atol=1e-5)  # cropped back to the ROI


def test_a_crop_narrower_than_the_patch_is_padded_with_zeros_as_in_training():
    import torch

    from bundle.inference.two_stage import TwoStageInferer

    seen = []

    def network(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.cat([x, -x], dim=1)

    volume = torch.as_tensor(np.random.default_rng(2).normal(50, 5, (1, 1, 3, 20, 24)).astype(np.float32))
    roi = Roi.whole((3, 20, 24))
    logits = TwoStageInferer(batch_size=8, context=(32, 32)).segment_roi(volume, network, roi)
    window = torch.cat(seen)
    assert tuple(window.shape) == (3, 1, 32, 32)
    assert torch.all(window[:, :, :6] == 0) and torch.all(window[:, :, :, :4] == 0)  # symmetric zero padding
    assert tuple(logits.shape) == (1, 2, 3, 20, 24)
    np.testing.assert_allclose(logits[0, 0].numpy(), window[:, 0, 6:26, 4:28].numpy())  # cropped back
