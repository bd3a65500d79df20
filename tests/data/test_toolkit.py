"""bundle.data.toolkit: the Cardiac MRI Toolkit's wall and scar rules reproduce its baselines voxel for voxel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.data.io import read_image
from bundle.data.toolkit import (
    DILATION_RADIUS_VOXELS,
    KMEANS_K,
    axial_dilate,
    kmeans_1d,
    kmeans_scar,
    protocol_description,
    toolkit_wall,
)


def load(carma_dir, name: str) -> np.ndarray:
    return sitk.GetArrayFromImage(read_image(carma_dir / name))


def test_axial_dilate_matches_toolkit_baseline(carma_dir):
    endo = load(carma_dir, "dilate-endo.nrrd")
    baseline = load(carma_dir, "baseline-CMRToolkitAxialDilateTest.nrrd") > 0
    dilated = axial_dilate(endo)
    assert dilated.dtype == bool and dilated.shape == endo.shape == (44, 576, 576)
    assert int(dilated.sum()) == int(baseline.sum()) == 92409
    np.testing.assert_array_equal(dilated, baseline)
    wall = toolkit_wall(endo)
    np.testing.assert_array_equal(wall, baseline & ~(endo > 0))


def test_kmeans_scar_matches_toolkit_baseline(carma_dir):
    image = load(carma_dir, "autoscar-data.nrrd")
    endo = load(carma_dir, "autoscar-endo.nrrd")
    wall = load(carma_dir, "autoscar-wall.nrrd")
    baseline = load(carma_dir, "baseline-CMRToolkitAutomaticLeftAtrialScarTest.nrrd") > 0
    scar = kmeans_scar(image, endo, wall)
    assert scar.dtype == bool
    assert int(scar.sum()) == int(baseline.sum()) == 2113
    np.testing.assert_array_equal(scar, baseline)
    assert not (scar & ~(wall > 0)).any()
    assert round(100 * scar.sum() / (wall > 0).sum(), 1) == 15.3


def test_dilation_is_axial_only():
    mask = np.zeros((5, 15, 15), np.uint8)
    mask[2, 7, 7] = 7
    dilated = axial_dilate(mask)
    assert dilated[[0, 1, 3, 4]].sum() == 0
    assert dilated[2, 7, 7 - DILATION_RADIUS_VOXELS] and dilated[2, 7, 7 + DILATION_RADIUS_VOXELS]
    assert not dilated[2, 7, 7 + DILATION_RADIUS_VOXELS + 1]
    assert dilated[2, 7 + 3, 7 + 3] and not dilated[2, 7 + 4, 7 + 3]  # ITK's discrete ball, not a square
    assert dilated[2].sum() == 69
    wall = toolkit_wall(mask, radius=1)
    assert wall.sum() == 8 and not wall[2, 7, 7]  # ITK's radius-1 ball is the 3 x 3 square


def test_kmeans_1d_known_clusters_and_empty_cluster():
    values = np.array([0.0, 0.1, 0.2, 10.0, 10.1, 10.2])
    centres, assignment = kmeans_1d(values, k=4)
    # the middle sub-ranges start empty and keep their initial centres
    np.testing.assert_allclose(centres, [0.1, 3.825, 6.375, 10.1])
    np.testing.assert_array_equal(assignment, [0, 0, 0, 3, 3, 3])
    centres, assignment = kmeans_1d(np.array([]))
    assert centres.size == 0 and assignment.size == 0


def test_kmeans_1d_respects_iteration_cap():
    values = np.random.default_rng(0).normal(size=500)
    capped, _ = kmeans_1d(values, max_iter=1)
    free, _ = kmeans_1d(values)
    assert not np.allclose(capped, free)


def test_kmeans_scar_finds_bright_wall_and_guards_degenerate_cases():
    rng = np.random.default_rng(1)
    endo = np.zeros((4, 32, 32), bool)
    endo[:, 8:24, 8:24] = True
    wall = toolkit_wall(endo, radius=2)
    image = rng.normal(100, 5, endo.shape)
    bright = wall.copy()
    bright[:, :, :16] = False
    image[bright] += 200
    scar = kmeans_scar(image, endo, wall)
    np.testing.assert_array_equal(scar, bright)
    # empty wall, constant intensities, a single voxel: no scar
    assert not kmeans_scar(image, endo, np.zeros_like(wall)).any()
    assert not kmeans_scar(np.full(endo.shape, 5.0), endo, wall).any()
    one = np.zeros_like(wall)
    one[0, 0, 0] = True
    assert not kmeans_scar(image, np.zeros_like(endo), one).any()
    with pytest.raises(ValueError, match="shapes"):
        kmeans_scar(image[:2], endo, wall)
    image[endo] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        kmeans_scar(image, endo, wall)


def test_protocol_description_is_json_and_states_parameters():
    description = json.loads(json.dumps(protocol_description()))
    assert description["wall"]["radius_voxels"] == [DILATION_RADIUS_VOXELS, DILATION_RADIUS_VOXELS, 0] == [4, 4, 0]
    assert description["scar"]["k"] == KMEANS_K == 4
