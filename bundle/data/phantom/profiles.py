"""Acquisition grids of the synthetic LGE phantoms: grid size and spacing of real cohorts.

The ``grid`` family of :mod:`bundle.data.phantom.families` draws among the full-size ones; ``tinyfov`` and ``tiny``
are small grids for the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How a phantom scan is sampled.

    ``supersample`` (z, y, x) sets the partial-volume rasterisation: each voxel is split into that
    many sub-voxels. ``centre_on`` picks the field of view: the chest (``"body"``, as a scanner
    does: the LA lies wherever the anatomy puts it) or a crop around the LA (``"la"``, only for the
    ``tiny`` unit-test profile). ``acquired_slice_mm``: the range of slice thicknesses a scan of this grid may have
    been acquired with before it was reconstructed on the grid (thicker than the grid's z spacing for the 2018
    challenge's isotropic grid, whose z was interpolated); None: acquired on the grid.
    """

    name: str
    spacing: tuple[float, float, float]  # x, y, z in mm
    in_plane_sizes: tuple[int, ...]
    slices: tuple[int, int]  # inclusive range of the number of slices
    supersample: tuple[int, int, int]
    centre_on: str = "body"
    acquired_slice_mm: tuple[float, float] | None = None


PROFILES: dict[str, Profile] = {
    # The 2018 Atrial Segmentation Challenge (Utah): 576 or 640 in-plane, exactly 88 slices, 0.625 mm isotropic
    # (acquired at 1.25 mm and reconstructed at half the slice spacing).
    "miccai2018": Profile("miccai2018", (0.625, 0.625, 0.625), (576, 640), (88, 88), (1, 2, 2),
                          acquired_slice_mm=(0.625, 1.25)),
    # Utah's older protocol (the CARMA toolkit's data): 0.625 x 0.625 x 2.5 mm, 576 or 640 in-plane, 44 slices.
    "utah": Profile("utah", (0.625, 0.625, 2.5), (576, 640), (44, 44), (4, 2, 2)),
    # In-house Siemens cohort of the JAS-GAN paper: 0.7 x 0.7 x 2.0 mm, FOV 380 mm, 60-68 slices.
    "siemens": Profile("siemens", (0.7, 0.7, 2.0), (528, 544, 560), (60, 68), (3, 2, 2)),
    # Tests of the whole-scan pipeline: a coarse whole field of view (240 x 240 x 80 mm) centred on the chest, so
    # the LA lies off-centre as in a real scan and must be found; about half a second a scan.
    "tinyfov": Profile("tinyfov", (2.5, 2.5, 5.0), (96,), (16, 16), (2, 2, 2)),
    # Unit tests: a 64 x 64 x 12 crop around the LA, a few seconds for a whole dataset.
    "tiny": Profile("tiny", (2.0, 2.0, 4.0), (64,), (12, 12), (3, 3, 3), centre_on="la"),
}

MIXED = "mixed"
"""The cohort profile whose scans draw their grid from the ``grid`` family (utah, miccai2018, siemens)."""


def get_profile(name: str) -> Profile:
    """The profile called ``name``, with a clear error listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown phantom profile {name!r}; choose one of {sorted(PROFILES)} or {MIXED!r}") from None
