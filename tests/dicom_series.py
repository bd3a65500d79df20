"""Write small DICOM series with SimpleITK for the tests (one file per slice, as scanners write them)."""

from __future__ import annotations

import locale
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import SimpleITK as sitk


def write_series(
    image: sitk.Image, folder: str | Path, uid: str = "1.2.826.0.1.3680043.2.1125.1", patient: str = "PAT1",
    number: int = 5, description: str = "3D LGE", reverse: bool = False, positions: Sequence | None = None,
    orientations: Sequence | None = None, prefix: str = "IM",
) -> list[Path]:
    """Write ``image`` as a series of 2D slice files into ``folder`` (``reverse``: files and instance numbers in
    reverse slice order); ``positions``/``orientations`` override a slice's ImagePositionPatient /
    ImageOrientationPatient (for broken series). Returns the files in slice order."""
    with kept_locale():
        return _write(image, Path(folder), uid, patient, number, description, reverse, positions, orientations, prefix)


@contextmanager
def kept_locale() -> Iterator[None]:
    """GDCM's DICOM writer sets the process locale to "C" (then subprocess output is decoded as ASCII): restore it."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write(image: sitk.Image, folder: Path, uid: str, patient: str, number: int, description: str, reverse: bool,
           positions: Sequence | None, orientations: Sequence | None, prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    d = image.GetDirection()
    iop = "\\".join(f"{v:.10g}" for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    depth = image.GetDepth()
    order = list(range(depth))[::-1] if reverse else list(range(depth))
    files = [None] * depth
    for n, k in enumerate(order):
        slice_ = image[:, :, k]
        tags = {
            "0008|0060": "MR", "0010|0020": patient, "0010|0010": patient, "0020|000d": uid + ".0",
            "0020|000e": uid, "0020|0011": str(number), "0008|103e": description,
            "0008|0031": time.strftime("%H%M%S"), "0008|0021": time.strftime("%Y%m%d"),
            "0020|0037": orientations[k] if orientations is not None and orientations[k] else iop,
            "0020|0032": positions[k] if positions is not None and positions[k] else
            "\\".join(f"{v:.10g}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(n + 1), "0008|0018": f"{uid}.{n + 1}", "0018|0050": f"{image.GetSpacing()[2]:.10g}",
        }
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        path = folder / f"{prefix}{n + 1:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(slice_)
        files[k] = path
    return files
