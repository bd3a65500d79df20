"""bundle.preprocessing.roi: the box stage 1 hands to stage 2 (margins, snapping, image borders, coarse to fine, world)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.preprocessing.roi import Roi, is_crop, mask_box, roi_from_box, roi_from_coarse_mask


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
