"""The random non-monotone intensity curve of stage 1's training patches (bundle/training/contrast.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bundle.training.contrast import RandIntensityCurved, intensity_curve


def _two_tissues(seed: int = 0) -> torch.Tensor:
    """A patch of two tissues, dark (0) and bright (3), with a little noise: z-scored like a training patch."""
    rng = np.random.default_rng(seed)
    image = np.zeros((1, 8, 16, 16), np.float32)
    image[:, :, 8:] = 3.0
    image += rng.normal(0, 0.05, image.shape).astype(np.float32)
    return torch.as_tensor((image - image.mean()) / image.std())


def _curved(seed: int, image: torch.Tensor, prob: float = 1.0) -> torch.Tensor:
    transform = RandIntensityCurved("image", prob=prob)
    transform.set_random_state(seed)
    return transform({"image": image})["image"]


def test_the_curve_is_seeded_and_keeps_the_patch_z_scored():
    image = _two_tissues()
    a, b, c = _curved(1, image), _curved(1, image), _curved(2, image)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert isinstance(a, torch.Tensor) and a.shape == image.shape
    assert float(a.mean()) == pytest.approx(float(image.mean()), abs=1e-4)
    assert float(a.std()) == pytest.approx(float(image.std()), rel=1e-3)


def test_the_order_of_two_tissues_changes_across_seeds():
    """The point of the curve: the brighter tissue is darker after some draws (an intensity model with the blood
    darker than its surroundings), and the tissues stay distinct (each keeps one intensity)."""
    image = _two_tissues()
    swapped = 0
    for seed in range(30):
        out = _curved(seed, image)[0]
        dark, bright = out[:, :8].mean(), out[:, 8:].mean()
        swapped += int(bright < dark)
    assert 5 <= swapped <= 25


def test_prob_zero_or_a_flat_image_leaves_the_patch_alone():
    image = _two_tissues()
    assert torch.equal(_curved(0, image, prob=0.0), image)
    flat = np.full((4, 4, 4), 2.5, np.float32)
    assert np.array_equal(intensity_curve(flat, [0.2, 0.9, 0.1]), flat)


def test_points_must_be_a_range():
    with pytest.raises(ValueError, match="points"):
        RandIntensityCurved("image", points=(1, 4))
    with pytest.raises(ValueError, match="points"):
        RandIntensityCurved("image", points=(8, 6))
