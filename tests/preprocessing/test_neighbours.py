"""2.5D input: each slice with its neighbours about neighbour_mm away, the same in training and at inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bundle.inference.two_stage import TwoStageInferer
from bundle.preprocessing.neighbours import neighbour_indices, neighbour_offset, stack_neighbours
from bundle.preprocessing.roi import Roi, roi_moments
from bundle.quantification.quality import adversarial_confidence
from bundle.training.datasets import NEIGHBOUR_KEYS, training_slices


def test_the_neighbours_lie_the_same_distance_away_on_every_grid():
    assert neighbour_offset(2.5, 2.5) == 1  # Utah: the next slice
    assert neighbour_offset(0.625, 2.5) == 4  # the 2018 challenge: the fourth
    assert neighbour_offset(2.0, 2.5) == 1 and neighbour_offset(0.7, 2.5) == 4  # Siemens' slices; and a fine grid
    assert neighbour_offset(5.0, 1.0) == 1  # never the slice itself
    with pytest.raises(ValueError, match="positive"):
        neighbour_offset(0.0, 2.5)
    assert neighbour_indices(0, 10, 2) == (0, 0, 2) and neighbour_indices(9, 10, 2) == (7, 9, 9)


def _slice_numbers(n: int) -> torch.Tensor:
    """(1, 1, n, 4, 5): every slice filled with its own index."""
    return torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 4, 5)[None, None].clone()


def test_stack_neighbours_takes_the_slices_offset_away_clamped_to_the_volume():
    stacked = stack_neighbours(_slice_numbers(10), 3)
    assert stacked.shape == (1, 3, 10, 4, 5)
    z = np.arange(10)
    np.testing.assert_array_equal(stacked[0, :, :, 0, 0].numpy(), [np.clip(z - 3, 0, 9), z, np.clip(z + 3, 0, 9)])
    part = stack_neighbours(_slice_numbers(10), 3, first=4, stop=7)
    np.testing.assert_array_equal(part[0, :, :, 0, 0].numpy(), [[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    with pytest.raises(ValueError, match="one channel"):
        stack_neighbours(torch.zeros(1, 2, 4, 4, 4), 1)


def test_inference_takes_the_neighbours_from_the_scan_around_the_roi():
    v = _slice_numbers(16)
    roi = Roi((5, 0, 0), (9, 4, 5))
    seen = TwoStageInferer(None, neighbour_mm=5.0).network_input(v, roi, spacing=(1.0, 1.0, 2.5))  # 2 slices away
    mean, std = roi_moments(v, roi)  # the ROI's own moments, as in training
    expected = (np.array([[3, 4, 5, 6], [5, 6, 7, 8], [7, 8, 9, 10]]) - mean) / std
    assert seen.shape == (1, 3, 4, 4, 5)
    np.testing.assert_allclose(seen[0, :, :, 0, 0].numpy(), expected, rtol=1e-5)
    flat = TwoStageInferer(None).network_input(v, roi, spacing=(1.0, 1.0, 2.5))
    np.testing.assert_allclose(flat[0].numpy(), seen[0, 1:2].numpy())  # a 2D network sees the middle channel alone
    with pytest.raises(ValueError, match="spacing"):
        TwoStageInferer(None, neighbour_mm=5.0).network_input(v, roi)

    calls = []
    _, std_all = roi_moments(v, Roi.whole(tuple(v.shape[-3:])))

    def stage2(x):  # LA logit: the slice above minus the slice below, back in slice numbers
        calls.append(x.shape[1])
        return torch.stack([(x[:, 2] - x[:, 0]) * std_all, torch.zeros_like(x[:, 0])], dim=1)

    out = TwoStageInferer(None, neighbour_mm=5.0, context=(4, 5))(v, stage2, spacing=(1.0, 1.0, 2.5))
    diff = out[0, 0, :, 0, 0].numpy()  # the whole volume is the ROI: clamped at its first and last slices
    np.testing.assert_allclose(diff, np.clip(np.arange(16) + 2, 0, 15) - np.clip(np.arange(16) - 2, 0, 15), atol=1e-4)
    assert set(calls) == {3}


def test_training_slices_carry_the_same_neighbours():
    image = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((20, 32, 32), np.float32)
    label = np.zeros((20, 32, 32), np.uint8)
    label[8:12, 10:20, 10:20] = 1
    case = {"image": image, "label": label, "spacing": (1.0, 1.0, 0.625), "scan": "s", "patient": "p", "ablation": "pre"}
    items = training_slices([case], (16, 16), slice_margin=1, neighbour_mm=2.5)  # 4 slices away
    assert items and all(set(NEIGHBOUR_KEYS) <= set(item) for item in items)
    for item in items:
        z = item["slice"]
        assert item["image_below"][0, 0, 0] == max(0, z - 4) and item["image_above"][0, 0, 0] == min(19, z + 4)
        assert np.shares_memory(item["image_above"], image)  # views of the cached volume, not copies
    assert not set(NEIGHBOUR_KEYS) & set(training_slices([case], (16, 16), slice_margin=1)[0])


def test_the_confidence_map_sees_the_slices_as_stage_2_saw_them():
    torch.manual_seed(0)
    image, probs = torch.randn(3, 4, 6, 6), torch.rand(2, 4, 6, 6)
    probs[0] = 0.9
    taken = []

    def confidence(x):
        taken.append(x.shape[1])
        return torch.sigmoid(x[:, :1] + x[:, 1:2])

    flat = adversarial_confidence(confidence, image[1], probs)
    stacked = adversarial_confidence(lambda x: confidence(torch.cat([x[:, 1:2], x[:, 3:]], 1)) if x.shape[1] == 5
                                     else None, image, probs)  # T of a 2.5D model: all three slices, then the masks
    assert taken == [3, 3] and stacked == pytest.approx(flat)
