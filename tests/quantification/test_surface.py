"""The LA surface map: mesh in world coordinates, non-bleeding scar projection, files, renders."""

from __future__ import annotations

import json

import meshio
import numpy as np
import pytest
import SimpleITK as sitk
from conftest import REPO
from skimage.io import imread
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkIOLegacy import vtkPolyDataReader

from bundle.quantification.surface import (
    SCAR_COLOUR,
    index_to_world,
    la_mesh,
    render_views,
    surface_map,
    write_ply,
    write_vtk,
)

RADIUS, WALL = 20.0, 2.5
CAP = 8.0
"""The scar cap: the wall above this height (mm) over the sphere's centre; its area share is (R - CAP) / (2 R)."""

IDENTITY = tuple(np.eye(3).ravel())
ROTATED = tuple(np.array([[0.0, 0.8, 0.6], [0.0, -0.6, 0.8], [1.0, 0.0, 0.0]]).ravel())
"""A non-identity direction: a rotation with a permutation of the axes (det +1)."""
FLIPPED = tuple(np.diag([-1.0, 1.0, 1.0]).ravel())
"""A direction with one flipped axis (det -1): the marching-cubes winding must be turned."""


def sphere(direction=IDENTITY, spacing=(0.8, 0.8, 1.6), size=(64, 64, 40), scar_up=(0, 0, 1)):
    """A sphere LA of radius RADIUS with a WALL mm wall and scar on its cap beyond CAP mm along ``scar_up`` (world),
    on a grid of ``direction``; returns (reference image, label, wall, image intensities, centre, up)."""
    ref = sitk.Image(list(size), sitk.sitkUInt8)
    ref.SetSpacing(spacing)
    ref.SetDirection(direction)
    matrix, _ = index_to_world(ref)
    centre_index = (np.array(size) - 1) / 2.0
    ref.SetOrigin(tuple(-(matrix @ centre_index)))  # the sphere's centre at world (0, 0, 0)
    z, y, x = np.meshgrid(*[np.arange(n) for n in size[::-1]], indexing="ij")
    world = np.stack([x, y, z], -1) @ matrix.T + np.asarray(ref.GetOrigin())
    distance = np.linalg.norm(world, axis=-1)
    up = np.asarray(scar_up, float) / np.linalg.norm(scar_up)
    la = distance <= RADIUS
    wall = la & (distance > RADIUS - WALL)
    scar = wall & (world @ up > CAP)
    label = la.astype(np.uint8) + scar.astype(np.uint8)
    image = np.where(scar, 330.0, np.where(wall, 200.0, np.where(la, 200.0, 60.0)))
    return ref, label, wall, image, np.zeros(3), up


@pytest.mark.parametrize("direction", [IDENTITY, ROTATED, FLIPPED], ids=["identity", "rotated", "flipped"])
def test_mesh_lies_on_the_la_boundary_in_world_coordinates(direction):
    ref, label, _, _, centre, _ = sphere(direction)
    mesh = la_mesh(label > 0, ref)
    radii = np.linalg.norm(np.asarray(mesh.vertices) - centre, axis=1)
    # the voxelised sphere's boundary lies within half a voxel diagonal of R; smoothing must not pull it inwards
    assert abs(float(np.median(radii)) - RADIUS) < 0.3
    assert np.all(np.abs(radii - RADIUS) < 1.0)
    assert mesh.is_watertight and mesh.volume > 0
    assert abs(mesh.volume / (4 / 3 * np.pi * RADIUS**3) - 1) < 0.015  # blur + Taubin keep the volume (1.3 %)
    outward = np.einsum("ij,ij->i", np.asarray(mesh.vertex_normals), np.asarray(mesh.vertices) - centre) / radii
    assert np.all(outward > 0.7)  # outwards everywhere, within the voxel staircase left after smoothing


def test_mesh_points_match_simpleitk_physical_points():
    ref, label, *_ = sphere(ROTATED)
    mesh = la_mesh(label > 0, ref, iterations=0)  # unsmoothed: vertices lie on voxel edges
    matrix, origin = index_to_world(ref)
    index = (np.asarray(mesh.vertices[0]) - origin) @ np.linalg.inv(matrix).T
    assert np.allclose(ref.TransformContinuousIndexToPhysicalPoint(index.tolist()), mesh.vertices[0], atol=1e-6)


@pytest.mark.parametrize("direction", [IDENTITY, ROTATED], ids=["identity", "rotated"])
def test_scar_cap_projects_onto_the_cap_without_bleeding(direction):
    ref, label, wall, image, centre, up = sphere(direction, scar_up=(0.3, -0.2, 1.0))
    surface = surface_map(label, ref, wall, image)
    height = (surface.vertices - centre) @ up
    # away from the cap's rim (one in-plane voxel diagonal and a slice of slack), every vertex is labelled right
    assert surface.scar[height > CAP + 1.5].all()
    assert not surface.scar[height < CAP - 1.5].any()
    expected = 100 * (RADIUS - CAP) / (2 * RADIUS)
    assert abs(surface.scar_percent - expected) < 2.0  # percentage points, stated in the README
    # IIR: scar 330 over the blood pool's 200; healthy wall 200 / 200
    assert np.allclose(surface.iir_max[height > CAP + 1.5], 1.65, atol=1e-3)
    assert np.allclose(surface.iir_mean[height < CAP - 1.5], 1.0, atol=1e-3)


def test_majority_keeps_the_cap_rim_where_any_scar_sample_would_spread_it():
    """At the cap's rim, normal segments graze the cap obliquely: marking a vertex scar when any sample is (the
    maximum projection) spreads the cap below its rim, the majority does not."""
    ref, label, wall, image, centre, up = sphere(scar_up=(0.3, -0.2, 1.0))
    surface = surface_map(label, ref, wall, image)
    height = (surface.vertices - centre) @ up
    any_scar = surface.scar_share > 0
    assert height[surface.scar].min() > CAP - 0.3
    assert height[any_scar].min() < height[surface.scar].min() - 0.2
    assert any_scar.sum() > surface.scar.sum()
    assert surface.scar_share[surface.scar].min() >= 0.5


def test_files_read_back_with_their_arrays(tmp_path):
    ref, label, wall, image, *_ = sphere(ROTATED)
    surface = surface_map(label, ref, wall, image)
    vtk = write_vtk(surface, tmp_path / "surface.vtk", title="P001 post")
    assert b"SPACE=LPS" in vtk.read_bytes().split(b"\n")[1]
    reader = vtkPolyDataReader()  # VTK's own reader: what 3D Slicer and ParaView read it with
    reader.SetFileName(str(vtk))
    reader.ReadAllScalarsOn()
    reader.Update()
    poly = reader.GetOutput()
    assert np.allclose(vtk_to_numpy(poly.GetPoints().GetData()), surface.vertices, atol=1e-4)
    faces = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).reshape(-1, 3)
    assert np.array_equal(faces, surface.faces)
    arrays = poly.GetPointData()
    assert np.array_equal(vtk_to_numpy(arrays.GetArray("scar")), surface.scar.astype(np.uint8))
    for name in ("scar_share", "iir_max", "iir_mean"):
        assert np.allclose(vtk_to_numpy(arrays.GetArray(name)), getattr(surface, name), equal_nan=True, atol=1e-5)
    assert np.allclose(vtk_to_numpy(arrays.GetNormals()), surface.normals, atol=1e-5)
    ply = write_ply(surface, tmp_path / "surface.ply")
    assert b"comment SPACE=LPS" in ply.read_bytes()[:400]
    mesh = meshio.read(ply)
    assert np.allclose(mesh.points, surface.vertices, atol=1e-4)
    red = mesh.point_data["red"].ravel().astype(np.uint8)  # meshio 5.3 gives PLY's uchar as int8
    assert np.array_equal(red[surface.scar], np.full(surface.scar.sum(), round(255 * SCAR_COLOUR[0])))
    assert np.allclose(mesh.point_data["scar_share"].ravel(), surface.scar_share, atol=1e-6)


def test_renders_are_non_empty_pngs_showing_the_scar(tmp_path):
    ref, label, wall, image, *_ = sphere()
    surface = surface_map(label, ref, wall, image)
    png = render_views(surface, tmp_path / "surface.png", "P001: scar 30.0 % of the LA surface")
    pixels = imread(png)[..., :3].astype(int)
    h, w = pixels.shape[:2]
    for quadrant in (pixels[h // 10 : h // 2, : w // 2], pixels[h // 10 : h // 2, w // 2 :],
                     pixels[h // 2 :, : w // 2], pixels[h // 2 :, w // 2 :]):
        coloured = np.abs(quadrant - 255).sum(-1) > 60
        assert coloured.mean() > 0.1  # the LA fills a good part of each view
        reddish = (quadrant[..., 0] > quadrant[..., 1] + 80) & (quadrant[..., 0] > 100)
        assert reddish.sum() > 100  # the cap is seen from every side view


def test_empty_mask_is_a_clear_error():
    ref, label, *_ = sphere()
    with pytest.raises(ValueError, match="empty"):
        la_mesh(np.zeros_like(label), ref)


def test_real_crop_with_manual_masks(carma_dir, tmp_path):
    """The CARMA crop (real LGE, manual LA and the toolkit's scar): the surface map through quantify_folder with the
    image, the wall's scar brighter on the surface than the healthy wall, and the check names the cut-off veins."""
    from bundle.data.io import read_image
    from bundle.data.predictions import write_prediction
    from bundle.quantification.folder import quantify_folder

    image = read_image(carma_dir / "autoscar-data.nrrd")
    endo, wall, scar = (sitk.GetArrayFromImage(read_image(carma_dir / name)) > 0 for name in (
        "autoscar-endo.nrrd", "autoscar-wall.nrrd", "baseline-CMRToolkitAutomaticLeftAtrialScarTest.nrrd"))
    write_prediction(tmp_path / "masks", "carma", endo | wall, scar, image)
    (row,) = quantify_folder(tmp_path / "masks", tmp_path / "out", {"carma": str(carma_dir / "autoscar-data.nrrd")})
    assert row["status"] == "ok" and row["qc"] == "LA touches the image border (superior)"
    assert 5 < row["surface_scar_percent"] < row["scar_percent"] + 5
    reader = vtkPolyDataReader()
    reader.SetFileName(str(tmp_path / "out" / "carma" / "surface.vtk"))
    reader.ReadAllScalarsOn()
    reader.Update()
    arrays = reader.GetOutput().GetPointData()
    on_scar = vtk_to_numpy(arrays.GetArray("scar")) > 0
    iir = vtk_to_numpy(arrays.GetArray("iir_max"))
    assert np.nanmedian(iir[on_scar]) > np.nanmedian(iir[~on_scar]) + 0.1


def test_benchmark_surface_command(tmp_path):
    import subprocess
    import sys

    from bundle.data.predictions import write_prediction

    ref, label, *_ = sphere()
    write_prediction(tmp_path / "pred", "ball", label > 0, label == 2, ref)
    run = subprocess.run([sys.executable, "-m", "bundle.cli.benchmark", "surface", "--predictions",
                          str(tmp_path / "pred"), "--scan", "ball", "--repeats", "2"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["scan"] == "ball" and result["size"] == [64, 64, 40] and result["repeats"] == 2
    for step in ("surface_map", "write_vtk_ply_png"):
        assert 0 < result[step]["min_s"] <= result[step]["median_s"] <= result[step]["max_s"]
