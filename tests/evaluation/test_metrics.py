"""Segmentation metrics on hand-made masks with known answers (incl. anisotropic spacing, empty masks)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from bundle.evaluation.metrics import (
    FAR_MM,
    METRICS,
    confusion,
    far_false_positives,
    normalized_mutual_information,
    segmentation_metrics,
)


def _box(shape=(6, 12, 12), z=slice(1, 5), y=slice(2, 10), x=slice(2, 10)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[z, y, x] = True
    return mask


def test_identical_masks_are_perfect():
    m = segmentation_metrics(_box(), _box(), (0.625, 0.625, 2.5))
    assert list(m) == list(METRICS)
    assert m == {"dsc": 1.0, "jaccard": 1.0, "asd_mm": 0.0, "hd95_mm": 0.0, "nmi": pytest.approx(1.0),
                 "osr": 0.0, "usr": 0.0, "far_osr": 0.0}


def test_overlap_counts_give_dice_jaccard_osr_usr():
    truth = _box(x=slice(2, 6))  # 4 x 8 x 4 = 128 voxels
    pred = _box(x=slice(2, 10))  # 256 voxels, holding the truth
    assert confusion(pred, truth)[:3] == (128, 128, 0)
    m = segmentation_metrics(pred, truth, (1, 1, 1))
    assert m["dsc"] == pytest.approx(2 * 128 / 384)
    assert m["jaccard"] == pytest.approx(0.5)
    assert m["osr"] == pytest.approx(1.0) and m["usr"] == 0.0
    under = segmentation_metrics(truth, pred, (1, 1, 1))  # prediction misses half
    assert under["usr"] == pytest.approx(0.5) and under["osr"] == 0.0


def test_far_osr_counts_only_false_positives_beyond_far_mm_of_the_truth():
    """A band just outside the truth (a boundary drawn out) counts in OSR only; a blob well away (another structure)
    in both. Anisotropic spacing: 2 slices of 2.5 mm are 5 mm, 2 pixels of 0.625 mm 1.25 mm."""
    spacing = (0.625, 0.625, 2.5)
    truth = np.zeros((16, 40, 40), bool)
    truth[4:10, 10:30, 10:30] = True  # 6 x 20 x 20 = 2400
    band = np.zeros_like(truth)
    band[4:10, 8:32, 8:32] = True
    band &= ~truth  # 2 pixels (1.25 mm) all round in-plane
    blob = np.zeros_like(truth)
    blob[12:14, 12:16, 12:16] = True  # 2 slices, 5-10 mm above the truth's top slice
    pred = truth | band | blob
    m = segmentation_metrics(pred, truth, spacing)
    assert m["osr"] == pytest.approx((band.sum() + blob.sum()) / truth.sum())
    assert m["far_osr"] == pytest.approx(blob.sum() / truth.sum())
    # the box the distance transform runs on changes nothing: the same count as over the whole array
    distance = ndimage.distance_transform_edt(~truth, sampling=(2.5, 0.625, 0.625))
    for far_mm in (1.0, FAR_MM, 5.0, 6.0):
        assert far_false_positives(pred, truth, spacing, far_mm) == int((pred & ~truth & (distance > far_mm)).sum())
    empty = np.zeros_like(truth)
    assert math.isnan(segmentation_metrics(pred, empty, spacing)["far_osr"])
    assert segmentation_metrics(empty, truth, spacing)["far_osr"] == 0.0
    assert far_false_positives(truth, truth, spacing) == 0


@pytest.mark.parametrize(("offset", "expected_mm"), [((2, 0, 0), 6.0), ((0, 0, 2), 1.0), ((0, 3, 0), 1.5)])
def test_surface_distances_use_the_spacing_of_each_axis(offset, expected_mm):
    # (x, y, z) spacing 0.5 x 0.5 x 3 mm; arrays are (z, y, x): two single voxels `offset` apart
    pred, truth = np.zeros((5, 6, 6), bool), np.zeros((5, 6, 6), bool)
    pred[0, 0, 0] = True
    truth[offset] = True
    m = segmentation_metrics(pred, truth, (0.5, 0.5, 3.0))
    assert m["asd_mm"] == pytest.approx(expected_mm)
    assert m["hd95_mm"] == pytest.approx(expected_mm)
    assert m["dsc"] == 0.0 and m["osr"] == 1.0 and m["usr"] == 1.0


def test_asd_is_symmetric_mean_of_both_directions():
    # 2D: truth a 1-pixel line x = 0..4 at y = 0; prediction the same line plus one pixel 4 mm away
    truth, pred = np.zeros((6, 6), bool), np.zeros((6, 6), bool)
    truth[0, 0:5] = True
    pred[0, 0:5] = True
    pred[4, 0] = True
    m = segmentation_metrics(pred, truth, (1.0, 1.0))
    # pred -> truth: five 0s and one 4 (6 surface points); truth -> pred: five 0s
    assert m["asd_mm"] == pytest.approx(4 / 11)


def test_empty_masks():
    empty, box = np.zeros((6, 12, 12), bool), _box()
    both = segmentation_metrics(empty, empty, (1, 1, 1))
    assert both == {"dsc": 1.0, "jaccard": 1.0, "asd_mm": 0.0, "hd95_mm": 0.0, "nmi": 1.0, "osr": 0.0, "usr": 0.0,
                    "far_osr": 0.0}
    missed = segmentation_metrics(empty, box, (1, 1, 1))
    assert missed["dsc"] == 0.0 and missed["usr"] == 1.0 and missed["osr"] == missed["far_osr"] == 0.0
    assert missed["nmi"] == 0.0
    assert math.isnan(missed["asd_mm"]) and math.isnan(missed["hd95_mm"])
    false_alarm = segmentation_metrics(box, empty, (1, 1, 1))
    assert false_alarm["dsc"] == 0.0 and false_alarm["jaccard"] == 0.0
    assert math.isnan(false_alarm["osr"]) and math.isnan(false_alarm["usr"]) and math.isnan(false_alarm["asd_mm"])
    assert math.isnan(false_alarm["far_osr"])


def test_nmi_of_independent_and_complementary_masks():
    left, top = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    left[:, :2] = True
    top[:2] = True
    assert normalized_mutual_information(*confusion(left, top)) == pytest.approx(0.0, abs=1e-12)
    assert normalized_mutual_information(*confusion(left, ~left)) == pytest.approx(1.0)  # fully informative


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differs"):
        segmentation_metrics(np.zeros((2, 3)), np.zeros((3, 2)), (1, 1))


def test_cavity_metrics_give_the_challenges_distances_in_mm_and_voxels():
    from bundle.evaluation.metrics import CAVITY_METRICS, cavity_metrics

    # two single voxels 2 slices apart along z, on a 0.625 x 0.625 x 2.5 mm grid: 5 mm, 2 voxels
    pred, truth = np.zeros((5, 6, 6), bool), np.zeros((5, 6, 6), bool)
    pred[0, 0, 0] = truth[2, 0, 0] = True
    m = cavity_metrics(pred, truth, (0.625, 0.625, 2.5))
    assert list(m) == list(CAVITY_METRICS)
    assert m["dsc"] == 0.0 and m["jaccard"] == 0.0
    assert m["hd95_mm"] == pytest.approx(5.0) and m["asd_mm"] == pytest.approx(5.0)
    assert m["hd95_vox"] == pytest.approx(2.0) and m["asd_vox"] == pytest.approx(2.0)
    truth = _box(x=slice(2, 6))
    m = cavity_metrics(_box(), truth, (1, 1, 1))
    assert m["dsc"] == pytest.approx(2 * 128 / 384) and m["jaccard"] == pytest.approx(0.5)
    empty = cavity_metrics(np.zeros_like(truth), truth, (1, 1, 1))
    assert empty["dsc"] == 0.0 and math.isnan(empty["hd95_vox"]) and math.isnan(empty["asd_mm"])
