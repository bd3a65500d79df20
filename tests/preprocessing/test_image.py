"""bundle.preprocessing.image: resampling back to a scan's grid only where the probabilities are not zero."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.preprocessing.image import resample_box_in_plane, resample_in_plane


@pytest.mark.parametrize("trial", range(12))
def test_resampling_the_box_back_equals_resampling_the_whole_array(trial):
    """Anywhere in the field of view, against its sides too (where the last sample's value is carried on)."""
    rng = np.random.default_rng(trial)
    z, y, x = (int(n) for n in (rng.integers(3, 8), rng.integers(20, 50), rng.integers(20, 50)))
    spacing = (float(rng.uniform(0.9, 1.6)), float(rng.uniform(0.9, 1.6)), 2.5)
    target = (float(rng.uniform(0.5, 0.8)), float(rng.uniform(0.5, 0.8)))
    size_xy = (round(x * spacing[0] / target[0]), round(y * spacing[1] / target[1]))
    z0, y0, x0 = int(rng.integers(0, z - 1)), int(rng.integers(0, y - 2)), int(rng.integers(0, x - 2))
    z1, y1, x1 = int(rng.integers(z0 + 1, z + 1)), int(rng.integers(y0 + 1, y + 1)), int(rng.integers(x0 + 1, x + 1))
    if trial % 3 == 0:  # the box on the far and near sides of the field of view
        y1, x0 = y, 0
    array = np.zeros((z, y, x), np.float32)
    array[z0:z1, y0:y1, x0:x1] = rng.uniform(0, 1, (z1 - z0, y1 - y0, x1 - x0))
    whole = resample_in_plane(array, spacing, target, sitk.sitkLinear, size_xy)
    box = resample_box_in_plane(array, (slice(z0, z1), slice(y0, y1), slice(x0, x1)), spacing, target,
                                (z, size_xy[1], size_xy[0]))
    assert box.shape == whole.shape and box.dtype == np.float32
    np.testing.assert_allclose(box, whole, atol=1e-6)
    assert whole[z0:z1].any()  # the box was not lost on the way


def test_an_empty_box_resamples_to_zeros():
    out = resample_box_in_plane(np.zeros((4, 10, 10), np.float32), (slice(2, 2), slice(0, 10), slice(0, 10)),
                                (1.0, 1.0, 2.0), (0.5, 0.5), (4, 20, 20))
    assert out.shape == (4, 20, 20) and not out.any()


def test_a_wrong_output_array_is_refused():
    with pytest.raises(ValueError, match="out must be float32 of shape"):
        resample_box_in_plane(np.zeros((4, 10, 10), np.float32), (slice(0, 4), slice(0, 10), slice(0, 10)),
                              (1.0, 1.0, 2.0), (0.5, 0.5), (4, 20, 20), out=np.zeros((4, 20, 20), np.float64))
