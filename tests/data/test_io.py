"""bundle.data.io: geometry survives NRRD/NIfTI round trips, bad files raise DatasetError naming them."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.data.case import Case
from bundle.data.io import (
    case_geometry,
    check_same_geometry,
    orientation_code,
    read_image,
    same_geometry,
    to_case,
    write_image,
)
from bundle.errors import DatasetError
from conftest import TINY_ORIGIN, TINY_SHAPE_ZYX, TINY_SPACING

SHAPE, SPACING, ORIGIN = TINY_SHAPE_ZYX, TINY_SPACING, TINY_ORIGIN


def rotation(axis: tuple[float, float, float], degrees: float) -> tuple[float, ...]:
    """Row-major rotation matrix about ``axis`` (Rodrigues)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    t = math.radians(degrees)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    r = np.eye(3) + math.sin(t) * kx + (1 - math.cos(t)) * kx @ kx
    return tuple(float(v) for v in r.ravel())


ROTATED = rotation((0.3, -0.5, 1.0), 30.0)
FLIPPED = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def make_image(direction=ROTATED, dtype=np.float32, seed: int = 0) -> sitk.Image:
    array = np.random.default_rng(seed).normal(100, 20, SHAPE).astype(dtype)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(direction)
    return image


# --------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
@pytest.mark.parametrize("direction", [ROTATED, FLIPPED], ids=["rotated", "flipped"])
def test_round_trip_keeps_geometry_and_voxels(tmp_path, suffix, direction):
    image = make_image(direction)
    path = write_image(image, tmp_path / "sub" / f"img{suffix}")
    back = read_image(path)
    assert same_geometry(image, back)
    assert np.allclose(back.GetSpacing(), SPACING, atol=1e-6)
    assert np.allclose(back.GetOrigin(), ORIGIN, atol=1e-4)
    assert np.allclose(back.GetDirection(), direction, atol=1e-5)
    assert orientation_code(back) == orientation_code(direction)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_array_with_case_reference_and_dtype(tmp_path):
    image = make_image()
    case = to_case(image, patient="p1", scan="s1")
    assert case.image.dtype == np.float32 and case.label.dtype == np.uint8 and case.label.shape == SHAPE
    assert case_geometry(image) == {"spacing": case.spacing, "origin": case.origin, "direction": case.direction}
    mask = case.image > 100
    path = write_image(mask, tmp_path / "mask.nrrd", case, dtype=np.uint8)
    back = read_image(path)
    assert back.GetPixelID() == sitk.sitkUInt8
    assert same_geometry(case, back)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), mask.astype(np.uint8))
    assert b"encoding: gzip" in path.read_bytes()[:1000]  # .nrrd is compressed


def test_image_reference_overrides_geometry_and_shape_is_checked(tmp_path):
    reference = make_image(FLIPPED)
    plain = sitk.GetImageFromArray(np.zeros(SHAPE, np.uint8))
    back = read_image(write_image(plain, tmp_path / "m.nii.gz", reference))
    assert same_geometry(reference, back)
    with pytest.raises(ValueError, match="size"):
        write_image(np.zeros((3, 4, 5)), tmp_path / "bad.nii.gz", reference)
    with pytest.raises(ValueError, match="cannot write"):
        write_image(plain, tmp_path / "m.png")


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = write_image(make_image(), tmp_path / "img.nii.gz")
    before = path.read_bytes()

    def broken(image, name, *args):
        Path(name).write_bytes(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(make_image(seed=1), path)
    with pytest.raises(RuntimeError):
        write_image(make_image(), tmp_path / "new.nrrd")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz"]


def test_old_nrrd0001_header_spacing(carma_dir):
    path = carma_dir / "autoscar-data.nrrd"
    assert path.read_bytes()[:8] == b"NRRD0001"
    image = read_image(path)
    assert image.GetSize() == (214, 166, 19)
    assert np.allclose(image.GetSpacing(), (0.625, 0.625, 2.5))
    assert np.allclose(image.GetOrigin(), (-60.625, -22.318, 45.543))
    assert orientation_code(image) == "LPS"


# ------------------------------------------------------------------------------------------- errors


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="file not found") as err:
        read_image(tmp_path / "nothere.nrrd")
    assert err.value.path.endswith("nothere.nrrd")


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii"])
def test_truncated_file(tmp_path, suffix):
    full = write_image(make_image(), tmp_path / f"full{suffix}")
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cannot be read") as err:
        read_image(cut)
    assert f"cut{suffix}" in str(err.value)
    assert "Traceback" not in str(err.value) and "sitk::" not in str(err.value) and "0x" not in str(err.value)


def test_complete_gzip_of_truncated_nifti(tmp_path):
    raw = write_image(make_image(), tmp_path / "full.nii").read_bytes()
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(raw[: len(raw) - 1000]))
    with pytest.raises(DatasetError, match="truncated") as err:
        read_image(short)
    assert "short.nii.gz" in str(err.value)


@pytest.mark.parametrize("name", ["noise.nrrd", "noise.nii.gz", "noise.nii"])
def test_random_bytes(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(os.urandom(4096))
    with pytest.raises(DatasetError, match="cannot be read") as err:
        read_image(path)
    assert name in str(err.value)


def test_not_3d(tmp_path):
    path = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 9), np.float32)), str(path))
    with pytest.raises(DatasetError, match="3D.*found 2D") as err:
        read_image(path)
    assert "flat.nrrd" in str(err.value)
    with pytest.raises(DatasetError, match="not a file"):
        read_image(tmp_path)


# ----------------------------------------------------------------------------------------- geometry


def test_same_geometry_tolerates_float_rounding_only():
    a = make_image()
    b = make_image()
    b.SetOrigin(tuple(float(np.float32(o)) for o in ORIGIN))
    b.SetSpacing(tuple(s * (1 + 1e-6) for s in SPACING))
    assert same_geometry(a, b)
    b.SetOrigin((ORIGIN[0] + 0.05, ORIGIN[1], ORIGIN[2]))
    assert not same_geometry(a, b)


@pytest.mark.parametrize(
    ("change", "word"),
    [
        (lambda im: im.SetSpacing((2.0, 2.0, 5.0)), "spacing"),
        (lambda im: im.SetOrigin((0.0, 0.0, 0.0)), "origin"),
        (lambda im: im.SetDirection(FLIPPED), "direction"),
    ],
)
def test_check_same_geometry_names_other_file(change, word):
    image, other = make_image(), make_image()
    change(other)
    with pytest.raises(DatasetError, match=word) as err:
        check_same_geometry(image, other, "/data/img.nrrd", "/data/label.nrrd")
    assert err.value.path == "/data/label.nrrd" and "img.nrrd" in err.value.problem


def test_check_same_geometry_size_and_case():
    image = make_image()
    small = sitk.GetImageFromArray(np.zeros((12, 64, 63), np.uint8))
    with pytest.raises(DatasetError, match=r"size \(63, 64, 12\)") as err:
        check_same_geometry(image, small, "img.nii.gz", "lab.nii.gz")
    assert str(err.value).startswith("lab.nii.gz")
    case = Case(image=np.zeros(SHAPE, np.float32), label=np.zeros(SHAPE, np.uint8), **case_geometry(image))
    check_same_geometry(case, image, "a", "b")


def test_orientation_codes():
    assert orientation_code((1, 0, 0, 0, 1, 0, 0, 0, 1)) == "LPS"
    assert orientation_code((-1, 0, 0, 0, -1, 0, 0, 0, 1)) == "RAS"
    assert orientation_code(FLIPPED) == "RPS"
