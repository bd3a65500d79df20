"""bundle.data.phantom.shapes and smooth_noise: partial-volume rasterisation is exact where it claims to be."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bundle.data.phantom import shapes
from bundle.data.phantom.intensity import _kernel_matrix, smooth_noise
from bundle.data.phantom.shapes import Grid, block_mean, coverage, paint, supersampled_mask

ANISO = (1.0, 1.0, 3.0)  # x, y, z in mm: thick slices, like LGE


def _sphere_grid(origin=(-15.3, -14.7, -16.1)) -> Grid:
    return Grid((11, 31, 31), ANISO, origin)  # (z, y, x): 31 x 31 x 33 mm


@pytest.mark.parametrize("sub", [(2, 2, 2), (3, 3, 3), (6, 2, 2)])
@pytest.mark.parametrize("origin", [(-15.0, -15.0, -15.0), (-15.3, -14.7, -16.1)])
def test_coverage_of_sphere_has_its_volume(sub, origin):
    radius, centre = 10.0, (0.2, -0.1, 0.4)
    grid = _sphere_grid(origin)
    sl, frac = coverage(shapes.ellipsoid(centre, (radius,) * 3), grid, sub)
    assert sl == (slice(None),) * 3 and frac.shape == grid.shape and frac.dtype == np.float32
    assert frac.min() >= 0.0 and frac.max() <= 1.0
    volume = float(frac.sum()) * math.prod(ANISO)
    exact = 4.0 / 3.0 * math.pi * radius**3
    assert volume == pytest.approx(exact, rel=0.02)
    # supersampled partial volume: fractions are multiples of 1 / n_sub
    n_sub = math.prod(sub)
    np.testing.assert_allclose(frac * n_sub, np.round(frac * n_sub), atol=1e-4)


def test_coverage_partial_values_only_at_the_boundary():
    radius, centre = 10.0, np.array([0.2, -0.1, 0.4])
    grid = _sphere_grid()
    _, frac = coverage(shapes.ellipsoid(centre, (radius,) * 3), grid, (3, 3, 3))
    x, y, z = grid.axes()
    dist = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) - radius
    half_diag = 0.5 * math.sqrt(sum(s * s for s in ANISO))
    partial = (frac > 0) & (frac < 1)
    assert partial.sum() > 100  # the whole surface is partial-volumed
    assert np.abs(dist[partial]).max() < half_diag  # ... and nothing else
    assert (frac[dist <= -half_diag] == 1).all()
    assert (frac[dist >= half_diag] == 0).all()
    # voxels cut by the surface are not all mis-rounded to 0 or 1
    assert (frac[np.abs(dist) < 0.2] > 0).all() and (frac[np.abs(dist) < 0.2] < 1).all()


def test_coverage_in_a_box_equals_whole_grid():
    grid = _sphere_grid()
    sdf = shapes.capsule((-4.0, -3.0, -2.0), (5.0, 2.0, 6.0), 3.5)
    _, full = coverage(sdf, grid, (3, 2, 2))
    sl, part = coverage(sdf, grid, (3, 2, 2), np.array([-8.0, -7.0, -6.0]), np.array([9.0, 6.0, 10.0]))
    assert part.shape != grid.shape  # it really was cropped
    np.testing.assert_array_equal(part, full[sl])
    outside = full.copy()
    outside[sl] = 0
    assert outside.sum() == 0


STEEP_CAPSULE = shapes.capsule((-6.1, -2.3, -5.2), (5.3, 4.1, 6.7), 4.3)

SHAPES = {
    "ellipsoid": (shapes.ellipsoid((0.37, -1.1, 0.9), (9.3, 6.1, 7.7), shapes.rotation((20, -10, 35))), 1.0),
    "capsule": (STEEP_CAPSULE, 1.0),
    # 4 x a distance: |gradient| 4, so the narrow band must be widened 4 times
    "steep": (lambda x, y, z: 4.0 * STEEP_CAPSULE(x, y, z), 4.0),
    "union": (shapes.union(shapes.cylinder((-8, 0, 0), (8, 1, 2), 3.0), shapes.ellipsoid((0, 4, 0), (5, 3, 4))), 1.0),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_supersampled_mask_equals_brute_force(name):
    sdf, lipschitz = SHAPES[name]
    grid = Grid((9, 28, 30), (1.0, 0.9, 2.5), (-14.2, -12.3, -11.4))
    sub = (4, 3, 3)
    mask = supersampled_mask(sdf, grid, sub, lipschitz=lipschitz)
    brute = sdf(*grid.axes(sub)) < 0
    assert mask.shape == (9 * 4, 28 * 3, 30 * 3) and mask.dtype == bool
    assert brute.sum() > 1000
    assert int((mask != brute).sum()) == 0


def test_supersampled_mask_needs_the_lipschitz_bound():
    """A steep shape evaluated with the default bound skips part of its band: the bound matters."""
    sdf, _ = SHAPES["steep"]
    grid = Grid((9, 28, 30), (1.0, 0.9, 2.5), (-14.2, -12.3, -11.4))
    brute = sdf(*grid.axes((4, 3, 3))) < 0
    assert int((supersampled_mask(sdf, grid, (4, 3, 3), lipschitz=1.0) != brute).sum()) > 0


def test_fine_axes_average_to_voxel_centres():
    grid = Grid((5, 6, 7), (0.7, 0.8, 2.5), (-3.1, 4.2, 10.0))
    sub = (4, 3, 2)
    x, y, z = grid.axes()
    fx, fy, fz = grid.axes(sub)
    np.testing.assert_allclose(fx.reshape(-1, sub[2]).mean(1), x.ravel(), atol=1e-5)
    np.testing.assert_allclose(fy.reshape(-1, sub[1]).mean(1), y.ravel(), atol=1e-5)
    np.testing.assert_allclose(fz.reshape(-1, sub[0]).mean(1), z.ravel(), atol=1e-5)
    # voxel (k, j, i) sits at origin + (i, j, k) * spacing
    assert (x.ravel()[3], y.ravel()[2], z.ravel()[4]) == pytest.approx((-3.1 + 3 * 0.7, 4.2 + 2 * 0.8, 10.0 + 4 * 2.5))


def test_block_mean_inverts_repeat():
    rng = np.random.default_rng(3)
    a = rng.random((3, 4, 5)).astype(np.float32)
    sub = (2, 3, 4)
    fine = a.repeat(sub[0], 0).repeat(sub[1], 1).repeat(sub[2], 2)
    out = block_mean(fine, sub)
    assert out.shape == a.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, a, rtol=1e-6)


def test_block_mean_counts_sub_voxels():
    fine = np.zeros((4, 6, 6), bool)
    fine[0, 0, 0] = True  # 1 of 2 * 3 * 3 = 18 sub-voxels of voxel (0, 0, 0)
    fine[2:4, 3:6, 3:6] = True  # all of voxel (1, 1, 1)
    fine[2, 3, 0:3] = True  # 3 of voxel (1, 1, 0)
    out = block_mean(fine, (2, 3, 3))
    expected = np.zeros((2, 2, 2), np.float32)
    expected[0, 0, 0], expected[1, 1, 1], expected[1, 1, 0] = 1 / 18, 1.0, 3 / 18
    np.testing.assert_allclose(out, expected, rtol=1e-6)


@pytest.mark.parametrize("z_invariant", [False, True])
def test_paint_blends_exactly_its_coverage_and_touches_nothing_else(z_invariant):
    """Painting over a volume is ``v + f * (value - v)`` with ``f`` the coverage, bit for bit, whether a voxel is
    decided by its block (deep inside), voxel by voxel, or supersampled; the grid's partial blocks included."""
    grid = _sphere_grid()  # 11 x 31 x 31 voxels in blocks of 2 x 5 x 5: partial blocks on three sides
    sdf = shapes.elliptic_column((1.3, -0.8), (12.0, 9.0)) if z_invariant else shapes.ellipsoid((0.2, -0.1, 0.4),
                                                                                                  (14.0, 11.0, 16.0))
    lo, hi = (None, None) if z_invariant else (np.array([-15.0, -12.0, -17.0]), np.array([15.0, 12.0, 17.0]))
    before = np.random.default_rng(0).uniform(0, 300, grid.shape).astype(np.float32)
    volume = before.copy()
    paint(volume, sdf, grid, (3, 2, 2), 123.4, lo, hi, z_invariant)
    sl, frac = coverage(sdf, grid, (3, 2, 2), lo, hi, z_invariant)
    assert (frac == 1).sum() > 100 and ((frac > 0) & (frac < 1)).sum() > 20  # all three kinds of voxel
    fine = (sdf(*grid.axes((3, 2, 2))) < 0).astype(np.float64)  # every sub-voxel, by brute force
    brute = fine.reshape(grid.shape[0], 3, grid.shape[1], 2, grid.shape[2], 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(frac, brute[:1] if z_invariant else brute[sl], atol=1e-6)
    expected = before.copy()
    expected[sl] = before[sl] + frac * (np.float32(123.4) - before[sl])
    np.testing.assert_array_equal(volume, expected)


def _neighbour_corr(field: np.ndarray, axis: int) -> float:
    a = np.moveaxis(field, axis, 0)
    return float(np.corrcoef(a[1:].ravel(), a[:-1].ravel())[0, 1])


def test_smooth_noise_is_standardised_and_smooth():
    shape, spacing = (16, 48, 40), (1.0, 1.0, 2.0)  # (z, y, x) and (x, y, z)
    field = smooth_noise(np.random.default_rng(1), shape, spacing, 20.0)
    assert field.shape == shape and field.dtype == np.float32 and np.isfinite(field).all()
    assert abs(float(field.mean())) < 1e-4
    assert float(field.std()) == pytest.approx(1.0, abs=1e-4)
    for axis in range(3):
        assert _neighbour_corr(field, axis) > 0.9
    # reproducible from the generator, different for another one
    np.testing.assert_array_equal(field, smooth_noise(np.random.default_rng(1), shape, spacing, 20.0))
    assert not np.allclose(field, smooth_noise(np.random.default_rng(2), shape, spacing, 20.0))


@pytest.mark.parametrize("shape, spacing", [
    ((40, 24, 20), (2.0, 2.0, 0.5)),  # more thin slices than z nodes: the in-plane products first, z last
    ((6, 24, 20), (2.0, 2.0, 5.0)),  # few thick slices: z first
])
def test_smooth_noise_is_the_separable_sum_of_its_lattice_in_either_order(shape, spacing):
    corr = 4.0
    field = smooth_noise(np.random.default_rng(3), shape, spacing, corr)
    wz, wy, wx = (_kernel_matrix(n, s, corr).astype(np.float64) for n, s in zip(shape, spacing[::-1]))
    coarse = np.random.default_rng(3).standard_normal((wz.shape[1], wy.shape[1], wx.shape[1])).astype(np.float32)
    reference = np.einsum("zk,kji,yj,xi->zyx", wz, coarse.astype(np.float64), wy, wx, optimize=True)
    reference = (reference - reference.mean()) / reference.std()
    np.testing.assert_allclose(field, reference, atol=1e-4)


def test_smooth_noise_correlation_length_follows_corr_mm():
    shape, spacing = (16, 48, 40), (1.0, 1.0, 2.0)
    rough = smooth_noise(np.random.default_rng(1), shape, spacing, 2.0)
    smooth = smooth_noise(np.random.default_rng(1), shape, spacing, 20.0)
    assert _neighbour_corr(rough, 2) < 0.85  # x: 1 mm steps, 2 mm correlation
    assert _neighbour_corr(rough, 0) < 0.5  # z: 2 mm steps
    assert _neighbour_corr(rough, 2) < _neighbour_corr(smooth, 2) - 0.15
    # the correlation decays with the lag, and is still high one correlation length / 4 away
    a = np.moveaxis(smooth, 2, 0)
    lag5 = float(np.corrcoef(a[5:].ravel(), a[:-5].ravel())[0, 1])
    assert 0.5 < lag5 < _neighbour_corr(smooth, 2)
