"""Reading and writing 3D images with their world geometry (SimpleITK).

Every reader error is a :class:`bundle.errors.DatasetError` naming the file, never a raw ITK or
zlib traceback. Writers are atomic: a failed write leaves no half-written file behind.
Geometry follows ITK: ``spacing`` and ``origin`` in millimetres in ``(x, y, z)`` order, the
direction a row-major 3 x 3 matrix, arrays in ``(z, y, x)`` order.
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from bundle.atomic import atomic_path
from bundle.data.case import Case
from bundle.errors import DatasetError

GEOMETRY_TOL = 1e-3
"""Tolerance of :func:`same_geometry`: relative for spacing, millimetres (per mm of voxel size) for
the origin, absolute for direction cosines. Float32 headers (NIfTI) round well below it."""

WRITABLE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
"""Single-file formats, which can be written atomically (detached headers cannot)."""

COMPRESSED_SUFFIXES = (".nii.gz", ".nrrd", ".mha")

_CHUNK = 1 << 22


def image_suffix(path: str | Path) -> str:
    """The format suffix of a file name, ``.nii.gz`` counted as one suffix."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


# ----------------------------------------------------------------------------------------- reading


def _short_reason(message: str, path: Path) -> str:
    """The informative line of an ITK exception message, without source locations or addresses."""
    if "Unable to determine ImageIO reader" in message:
        return "unknown or corrupt image format (no SimpleITK reader accepts it)"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Exception thrown in SimpleITK")]
    if not lines:
        return "unknown error"
    line = lines[-1]
    if line.startswith("Reason:") and len(lines) > 1:  # MetaIO reports a stale errno here
        line = lines[-2]
    line = re.sub(r"^\[\w+\]\s*", "", line)
    line = re.sub(r"^(s?itk::|ITK )ERROR:\s*", "", line)
    line = re.sub(r"^\w+\(0x[0-9a-fA-F]+\):\s*", "", line)
    line = re.sub(r"^_\w+:\s*", "", line)
    return line.replace(str(path), path.name).strip() or "unknown error"


def _check_nifti_complete(path: Path) -> None:
    """Raise if a NIfTI file holds fewer voxel bytes than its header announces.

    ITK reads a truncated ``.nii`` or ``.nii.gz`` without complaint (the missing voxels come out
    as zeros), so the length is checked here: the file size for ``.nii``, the decompressed stream
    (which also verifies the gzip CRC) for ``.nii.gz``.
    """
    try:
        header = nib.load(str(path)).header
    except Exception as err:  # nibabel raises many types for bad headers
        raise DatasetError(path, f"cannot be read: bad NIfTI header ({err})") from None
    n_voxels = int(np.prod(header.get_data_shape()))
    expected = int(header.get_data_offset()) + n_voxels * header.get_data_dtype().itemsize
    if image_suffix(path) == ".nii.gz":
        size = 0
        try:
            with gzip.open(path, "rb") as stream:
                while chunk := stream.read(_CHUNK):
                    size += len(chunk)
        except (EOFError, OSError, zlib.error) as err:
            raise DatasetError(path, f"cannot be read: truncated or corrupt gzip data ({err})") from None
    else:
        size = path.stat().st_size
    if size < expected:
        raise DatasetError(path, f"cannot be read: truncated, {size} bytes where the header needs {expected}")


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D scalar image in any format SimpleITK reads (NRRD, old ``NRRD0001`` too, NIfTI, MHA).

    Raises:
        DatasetError: the file is missing, unreadable, truncated, or not a 3D scalar image.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(path, "file not found")
    if not path.is_file():
        raise DatasetError(path, "is not a file")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise DatasetError(path, f"cannot be read: {_short_reason(str(err), path)}") from None
    if image_suffix(path) in (".nii", ".nii.gz"):
        _check_nifti_complete(path)
    if image.GetDimension() != 3:
        raise DatasetError(path, f"must be a 3D image, found {image.GetDimension()}D of size {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DatasetError(
            path, f"must be a scalar image, found {image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    return image


# ----------------------------------------------------------------------------------------- writing


def on_grid(array: np.ndarray, reference: sitk.Image | Case | None) -> sitk.Image:
    """A ``(z, y, x)`` array as an image carrying ``reference``'s geometry (ITK's default one for None)."""
    array = np.asarray(array)
    if isinstance(reference, Case):
        return reference.to_image(array)
    image = sitk.GetImageFromArray(array)
    if reference is not None:
        if image.GetSize() != reference.GetSize():
            raise ValueError(
                f"array size {image.GetSize()} (x, y, z) differs from the reference's {reference.GetSize()}"
            )
        image.CopyInformation(reference)
    return image


def write_image(
    data: np.ndarray | sitk.Image,
    path: str | Path,
    reference: sitk.Image | Case | None = None,
    dtype: np.dtype | type | str | None = None,
) -> Path:
    """Write an array (with the reference's geometry) or an image atomically; return the path.

    ``data`` is a ``(z, y, x)`` array or a SimpleITK image; ``reference`` (an image or a Case)
    supplies the geometry and overrides an image's own. ``dtype`` casts the voxels first. Parent
    folders are created; ``.nii.gz``, ``.nrrd`` and ``.mha`` are compressed. The image goes to a
    temporary file in the target folder and is renamed into place, so no partial file remains.
    """
    path = Path(path)
    suffix = image_suffix(path)
    if suffix not in WRITABLE_SUFFIXES:
        raise ValueError(f"{path}: cannot write '{suffix}' files; use one of {', '.join(WRITABLE_SUFFIXES)}")
    if isinstance(data, sitk.Image) and dtype is None and reference is None:
        image = data
    else:
        if isinstance(data, sitk.Image):
            array = sitk.GetArrayFromImage(data)
            reference = data if reference is None else reference
        else:
            array = np.asarray(data)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype == bool:
            array = array.astype(np.uint8)
        image = on_grid(array, reference)
    with atomic_path(path, suffix) as tmp:
        sitk.WriteImage(image, tmp, suffix in COMPRESSED_SUFFIXES)
    return path


# ---------------------------------------------------------------------------------------- geometry


def case_geometry(image: sitk.Image) -> dict:
    """``spacing``, ``origin`` (x, y, z, mm) and row-major ``direction`` of an image, as float tuples."""
    return {
        "spacing": tuple(float(s) for s in image.GetSpacing()),
        "origin": tuple(float(o) for o in image.GetOrigin()),
        "direction": tuple(float(d) for d in image.GetDirection()),
    }


def to_case(image: sitk.Image, label: np.ndarray | sitk.Image | None = None, **fields) -> Case:
    """A Case from an image (voxels as float32) and an optional label map (uint8, zeros if none).

    ``fields`` sets the other Case fields (``patient``, ``scan``, ``ablation``, ``cavity``, ...).
    """
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    if label is None:
        label_array = np.zeros(array.shape, np.uint8)
    elif isinstance(label, sitk.Image):
        label_array = sitk.GetArrayFromImage(label).astype(np.uint8)
    else:
        label_array = np.asarray(label).astype(np.uint8)
    if label_array.shape != array.shape:
        raise ValueError(f"label shape {label_array.shape} differs from the image's {array.shape}")
    return Case(image=array, label=label_array, **case_geometry(image), **fields)


def _geometry_of(obj: sitk.Image | Case) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """Size (x, y, z), spacing, origin and direction of an image or a Case."""
    if isinstance(obj, Case):
        size = tuple(int(n) for n in obj.image.shape[::-1])
        return size, np.asarray(obj.spacing, float), np.asarray(obj.origin, float), np.asarray(obj.direction, float)
    return (
        tuple(obj.GetSize()),
        np.asarray(obj.GetSpacing(), float),
        np.asarray(obj.GetOrigin(), float),
        np.asarray(obj.GetDirection(), float),
    )


def _fmt(values: Sequence[float] | np.ndarray) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


def geometry_differences(a: sitk.Image | Case, b: sitk.Image | Case, tol: float = GEOMETRY_TOL) -> list[str]:
    """What differs between the grids of ``a`` and ``b`` (empty when they match), in words.

    Each entry reads ``"<what> <b's value> differs from <a's value>"``.
    """
    size_a, sp_a, org_a, dir_a = _geometry_of(a)
    size_b, sp_b, org_b, dir_b = _geometry_of(b)
    if size_a != size_b:
        return [f"size {size_b} (x, y, z) differs from {size_a}"]
    diffs = []
    if not np.allclose(sp_b, sp_a, rtol=tol, atol=0.0):
        diffs.append(f"spacing {_fmt(sp_b)} mm differs from {_fmt(sp_a)}")
    if not np.allclose(org_b, org_a, rtol=0.0, atol=tol * max(1.0, float(sp_a.max()))):
        diffs.append(f"origin {_fmt(org_b)} mm differs from {_fmt(org_a)}")
    if not np.allclose(dir_b, dir_a, rtol=0.0, atol=tol):
        diffs.append(f"direction {_fmt(dir_b)} differs from {_fmt(dir_a)}")
    return diffs


def same_geometry(a: sitk.Image | Case, b: sitk.Image | Case, tol: float = GEOMETRY_TOL) -> bool:
    """Whether two images (or Cases) share size, spacing, origin and direction within ``tol``."""
    return not geometry_differences(a, b, tol)


def check_same_geometry(
    image: sitk.Image | Case,
    other: sitk.Image | Case,
    image_path: str | Path,
    other_path: str | Path,
    tol: float = GEOMETRY_TOL,
) -> None:
    """Raise a DatasetError naming ``other_path`` when ``other`` does not lie on ``image``'s grid."""
    diffs = geometry_differences(image, other, tol)
    if diffs:
        raise DatasetError(other_path, f"does not match the grid of {Path(image_path).name}: " + "; ".join(diffs))


def turn_array(array: np.ndarray, grid: sitk.Image, orientation: str) -> sitk.Image:
    """An array on ``grid`` as an image turned to ``orientation`` (axes permuted and flipped, no resampling)."""
    image = sitk.GetImageFromArray(np.asarray(array))
    image.CopyInformation(grid)
    return sitk.DICOMOrient(image, orientation)


def orientation_code(direction: Sequence[float] | sitk.Image | Case) -> str:
    """Three-letter DICOM/ITK orientation code (e.g. ``"LPS"``, ``"RAS"``) of a direction matrix."""
    if isinstance(direction, sitk.Image):
        direction = direction.GetDirection()
    elif isinstance(direction, Case):
        direction = direction.direction
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines([float(d) for d in direction])


AXIAL_ORIENTATION = "LPS"
"""A frame whose array axis 0 is axial, for peeling the wall in the axial plane (flips do not matter)."""


def axial_image(image: sitk.Image) -> sitk.Image:
    """``image`` with array axis 0 axial (turned only when it is stored otherwise)."""
    return image if orientation_code(image)[2] in "SI" else sitk.DICOMOrient(image, AXIAL_ORIENTATION)


def axial_array(array: np.ndarray, reference: sitk.Image | Case) -> np.ndarray:
    """An array on ``reference``'s grid re-expressed with axis 0 axial (for figures of axial slices)."""
    return sitk.GetArrayFromImage(axial_image(on_grid(np.asarray(array), reference)))
