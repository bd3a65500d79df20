"""Synthetic 3D LGE CMR phantoms of AF patients, with LA and scar ground truth.

Each patient has one anatomy (LA and thorax, of its ``anatomy`` family); a patient may have a pre-ablation scan,
a post-ablation scan or both, each with its own grid, form (whole field of view or a crop around the LA),
intensity family, scar and acquisition (:mod:`bundle.data.phantom.families`). Everything is drawn from
``numpy.random.default_rng`` seeded by (seed, patient, scan), so a dataset is a pure function of its seed,
profile and family selection.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from bundle.data.case import Case
from bundle.data.labels import compose_label
from bundle.data.phantom.atrium import AtriumRaster, rasterise_atrium, sample_atrium
from bundle.data.phantom.context import sample_context
from bundle.data.phantom.families import PER_PATIENT, draw, family_weights
from bundle.data.phantom.intensity import Acquisition, acquire, acquisition_fields, draw_acquisition
from bundle.data.phantom.profiles import MIXED, Profile, get_profile
from bundle.data.phantom.scar import draw_scar
from bundle.data.phantom.shapes import Grid, block_mean, paint

LA_MIN_FRACTION = 0.5
"""A voxel is LA when LA tissue (cavity + wall + scar) fills at least half of it."""
SCAR_MIN_FRACTION = 0.25
"""An LA voxel is scar when scar fills at least this much of it and outweighs healthy wall."""
BOTH_SCANS_FRACTION = 0.6
"""Share of patients with both a pre- and a post-ablation scan; the others have one of them."""
LA_CROP_MARGIN_VOXELS = (10, 20)
"""``la_crop``: voxels added to the LA's in-plane box on each side (all slices kept), as the common preprocessed
copies of the 2018 challenge crop it."""
TIGHT_CROP_MARGIN_MM = (5.0, 45.0)
"""``tight_crop``: millimetres added in-plane on each side of the LA box (the CARMA crop has 12-41 mm)..."""
TIGHT_CROP_MARGIN_SLICES = (0, 2)
"""... and slices above and below the LA."""
TEST_PROFILE_FAMILIES = {"form": ["whole"], "intensity": ["lge"], "anatomy": ["standard"]}
"""The test profiles (``tiny``, ``tinyfov``) are whole fields of view of one LGE contrast and the standard veins
unless a family selection says otherwise: the unit and end-to-end tests train tiny models on a handful of them."""


@dataclass(frozen=True)
class ScanSpec:
    """One scan of a cohort: its patient, pre- or post-ablation, and its families (``grid`` None: the profile's)."""

    patient_index: int
    ablation: str  # "pre" or "post"
    grid: str | None = None
    form: str = "whole"
    intensity: str = "lge"
    anatomy: str = "standard"

    @property
    def patient(self) -> str:
        return f"P{self.patient_index:03d}"

    @property
    def scan(self) -> str:
        return f"{self.patient}_{self.ablation}"

    @property
    def families(self) -> dict[str, str]:
        return {"grid": self.grid or "", "form": self.form, "intensity": self.intensity, "anatomy": self.anatomy}


def cohort(n_patients: int, seed: int = 0, both_fraction: float = BOTH_SCANS_FRACTION, profile: str | None = None,
           families: Mapping[str, Sequence[str]] | None = None) -> list[ScanSpec]:
    """Which scans a cohort of ``n_patients`` has, in a fixed order, with their families.

    ``profile`` None keeps every scan at the defaults (the profile's grid, a whole LGE scan of the standard
    anatomy); otherwise each patient draws its anatomy and each scan its grid (``mixed``: among the full-size
    grids; else the profile's), form and intensity family from :data:`~bundle.data.phantom.families.WEIGHTS`,
    restricted to ``families``. The scans a cohort has do not depend on the families.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}")
    rng = np.random.default_rng([seed, 7919])
    specs = []
    for p in range(1, n_patients + 1):
        if rng.uniform() < both_fraction:
            kinds = ("pre", "post")
        else:
            kinds = ("pre",) if rng.uniform() < 0.5 else ("post",)
        specs += [ScanSpec(p, k) for k in kinds]
    if profile is None:
        return specs
    if profile != MIXED:
        get_profile(profile)
    select = dict(TEST_PROFILE_FAMILIES) if profile in ("tiny", "tinyfov") else {}
    select.update(families or {})
    weights = family_weights(select, grid=None if profile == MIXED else profile)
    drawn = []
    for spec in specs:
        patient_rng = np.random.default_rng([seed, 104729, spec.patient_index])
        scan_rng = np.random.default_rng([seed, 104729, spec.patient_index, 1 if spec.ablation == "post" else 0])
        choice = {f: draw(patient_rng if f in PER_PATIENT else scan_rng, weights[f]) for f in weights}
        drawn.append(replace(spec, **choice))
    return drawn


def _scan_grid(profile: Profile, rng: np.random.Generator, centre_xy: np.ndarray,
               la_z: tuple[float, float] = (-20.0, 20.0)) -> Grid:
    """The scan's grid: centred on the chest in-plane (jittered), and along z on the LA, shifted by up to 6 mm but
    never so far that the LA (``la_z``: its lowest and highest z, mm) leaves a short stack such as the 2018
    challenge's 55 mm (88 slices of 0.625 mm), which the acquisition is planned to cover the LA with."""
    n = int(rng.choice(profile.in_plane_sizes))
    nz = int(rng.integers(profile.slices[0], profile.slices[1] + 1))
    jitter = 10.0 if profile.centre_on == "body" else 3.0
    free = max(0.0, 0.5 * (nz * profile.spacing[2] - (la_z[1] - la_z[0])) - profile.spacing[2])
    shift = min(6.0, free)
    z = 0.5 * (la_z[0] + la_z[1]) + rng.uniform(-shift, shift)
    centre = np.array([centre_xy[0] + rng.normal(0, jitter), centre_xy[1] + rng.normal(0, jitter), z])
    size = np.array([n, n, nz], float)
    origin = centre - 0.5 * (size - 1) * np.asarray(profile.spacing)
    return Grid((nz, n, n), profile.spacing, tuple(float(o) for o in np.round(origin, 4)))


def _paint(parts, grid: Grid, profile: Profile, mu: dict[str, float]) -> np.ndarray:
    """The noiseless tissue-intensity volume of the context ``parts``, painted in order (later over earlier) with
    their partial volume (:func:`~bundle.data.phantom.shapes.paint`: only the voxels each part reaches).

    The leading columns along z (body outline, chest wall, thorax) are painted on one slice that then fills
    every slice: they are the same on all slices.
    """
    clean2d = np.zeros((1, *grid.shape[1:]), np.float32)
    lead = 0
    while lead < len(parts) and parts[lead].z_invariant:
        part = parts[lead]
        paint(clean2d, part.sdf, grid, profile.supersample, mu[part.tissue], part.lo, part.hi, True)
        lead += 1
    clean = np.repeat(clean2d, grid.shape[0], axis=0)
    for part in parts[lead:]:
        paint(clean, part.sdf, grid, profile.supersample, mu[part.tissue], part.lo, part.hi, part.z_invariant)
    return clean


def _crop(form: str, la: np.ndarray, offset: Sequence[int], grid: Grid, rng: np.random.Generator
          ) -> tuple[slice, slice, slice] | None:
    """The box (z, y, x slices of ``grid``) of a cropped ``form``, or None for a whole field of view; ``la`` is the
    LA's mask in the box starting at ``offset`` (z, y, x) of the grid."""
    if form == "whole":
        return None
    idx = np.nonzero(la)
    lo = [int(i.min()) + o for i, o in zip(idx, offset)]
    hi = [int(i.max()) + 1 + o for i, o in zip(idx, offset)]
    if form == "la_crop":
        margins = [(0, 0)] + [tuple(int(m) for m in rng.integers(LA_CROP_MARGIN_VOXELS[0], LA_CROP_MARGIN_VOXELS[1] + 1,
                                                                 size=2)) for _ in range(2)]
        lo[0], hi[0] = 0, grid.shape[0]
    elif form == "tight_crop":
        sx, sy, _ = grid.spacing
        margins = [tuple(int(m) for m in rng.integers(TIGHT_CROP_MARGIN_SLICES[0], TIGHT_CROP_MARGIN_SLICES[1] + 1, 2))]
        margins += [tuple(int(round(rng.uniform(*TIGHT_CROP_MARGIN_MM) / s)) for _ in range(2)) for s in (sy, sx)]
    else:
        raise ValueError(f"unknown form {form!r}; choose whole, la_crop or tight_crop")
    return tuple(slice(max(0, a - m[0]), min(n, b + m[1])) for a, b, m, n in zip(lo, hi, margins, grid.shape))


def _sub_grid(grid: Grid, box: tuple[slice, slice, slice]) -> Grid:
    """The grid of the voxels in ``box`` (z, y, x slices)."""
    starts = (box[2].start, box[1].start, box[0].start)
    origin = tuple(float(o + a * s) for o, a, s in zip(grid.origin, starts, grid.spacing))
    return Grid(tuple(b.stop - b.start for b in box), grid.spacing, origin)


def _overlap(raster_box: tuple[slice, ...], crop: tuple[slice, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Where the LA's raster box and the crop meet: (slices into the cropped grid, slices into the raster box)."""
    into_crop, into_box = [], []
    for r, c in zip(raster_box, crop):
        a, b = max(r.start, c.start), min(r.stop, c.stop)
        b = max(a, b)
        into_crop.append(slice(a - c.start, b - c.start))
        into_box.append(slice(a - r.start, b - r.start))
    return tuple(into_crop), tuple(into_box)


@dataclass
class _LaFractions:
    """The LA of one scan in its raster box: the fine raster and scar, and per voxel the partial volumes of cavity,
    healthy wall and scar, their sum, and the voxels that are LA (:data:`LA_MIN_FRACTION`)."""

    raster: AtriumRaster
    scar_fine: np.ndarray
    cavity: np.ndarray
    wall: np.ndarray
    scar: np.ndarray
    total: np.ndarray
    mask: np.ndarray


def _rasterise_la(atrium, grid: Grid, profile: Profile, rng: np.random.Generator, ablation: str) -> _LaFractions:
    """The LA on ``grid`` with its scar (drawn from ``rng``), as partial volumes per voxel."""
    raster = rasterise_atrium(atrium, grid, profile.supersample, np.zeros(3))
    scar_fine = draw_scar(rng, atrium, raster, np.zeros(3), ablation)
    cavity = block_mean(raster.cavity, profile.supersample)
    wall = block_mean(raster.wall & ~scar_fine, profile.supersample)
    scar = block_mean(scar_fine, profile.supersample)
    total = cavity + wall + scar
    return _LaFractions(raster, scar_fine, cavity, wall, scar, total, total >= LA_MIN_FRACTION)


def _insert_la(clean: np.ndarray, la: _LaFractions, grid: Grid, whole: Grid, crop: tuple[slice, ...] | None,
               mu: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint the LA over the context ``clean`` (on ``grid``, the ``crop`` of ``whole`` or all of it) with its
    partial volumes, in place, and return the label (LA and scar), cavity and wall masks on ``grid``."""
    into_grid, into_box = _overlap(la.raster.slices, crop or tuple(slice(0, n) for n in whole.shape))
    cav, wall, scar, total, la_box = (a[into_box] for a in (la.cavity, la.wall, la.scar, la.total, la.mask))
    box = clean[into_grid]
    clean[into_grid] = box * (1.0 - total) + cav * mu["blood_la"] + wall * mu["la_wall"] + scar * mu["scar"]
    scar_box = la_box & (scar >= SCAR_MIN_FRACTION) & (scar >= wall)
    cavity_box = la_box & (cav >= 0.5) & ~scar_box
    # full-size arrays are few and written only in the LA box (fresh pages cost more than the arithmetic)
    label = np.zeros(grid.shape, np.uint8)
    label[into_grid] = compose_label(la_box, scar_box)
    cavity = np.zeros(grid.shape, np.uint8)
    cavity[into_grid] = cavity_box
    wall_mask = np.zeros(grid.shape, np.uint8)
    wall_mask[into_grid] = la_box & ~cavity_box
    return label, cavity, wall_mask


def generate_scan(spec: ScanSpec, profile: str | Profile = "utah", seed: int = 0, acquisition: Acquisition | None = None) -> Case:
    """One phantom scan as a :class:`Case` with image, label, cavity and wall.

    The grid is the spec's ``grid`` (else ``profile``), its form, intensity family and anatomy the spec's.
    ``acquisition`` overrides the randomly drawn acquisition (``Acquisition.nominal()`` gives the calibrated tissue
    means without gain, gamma, bias, blur or jitter).
    """
    if spec.grid is not None:
        profile = spec.grid
    elif profile == MIXED:
        raise ValueError(f"scan {spec.scan}: a {MIXED} cohort's scan needs its grid (cohort() draws it)")
    profile = get_profile(profile) if isinstance(profile, str) else profile
    patient_rng = np.random.default_rng([seed, spec.patient_index])
    atrium = sample_atrium(patient_rng, spec.anatomy)
    parts, body_xy = sample_context(patient_rng, atrium)
    rng = np.random.default_rng([seed, spec.patient_index, 1 if spec.ablation == "post" else 0])
    reach = atrium.extent()[2]
    whole = _scan_grid(profile, rng, body_xy if profile.centre_on == "body" else np.zeros(2), (-reach, reach))
    drawn = Acquisition.sample(rng, spec.intensity, profile.acquired_slice_mm)  # always drawn: an override leaves
    acq = acquisition or drawn  # the scar stream unchanged
    mu = acq.tissue_means

    # a whole field of view's context and acquisition fields do not depend on the LA: they are computed on a
    # second thread meanwhile (NumPy, SciPy, SimpleITK and torch release the GIL in their loops); a crop's grid is
    # known only from the LA. The scan's stream is drawn in the same order either way.
    with ThreadPoolExecutor(max_workers=1) as pool:
        painting = pool.submit(_paint, parts, whole, profile, mu) if spec.form == "whole" else None
        la = _rasterise_la(atrium, whole, profile, rng, spec.ablation)
        draws = fields = None
        if painting is not None:  # nothing else draws from the stream before acquire for a whole field of view
            draws = draw_acquisition(rng, whole.shape, whole.spacing, acq)
            fields = pool.submit(acquisition_fields, draws)
        crop = _crop(spec.form, la.mask, [s.start for s in la.raster.slices], whole, rng)
        grid = whole if crop is None else _sub_grid(whole, crop)
        clean = _paint(parts, grid, profile, mu) if painting is None else painting.result()
        label, cavity, wall = _insert_la(clean, la, grid, whole, crop, mu)
        image = acquire(clean, grid.spacing, acq, rng if draws is None else draws, in_place=True,
                        fields=None if fields is None else fields.result())
    n_wall_fine = int(la.raster.wall.sum())
    return Case(
        image=image,
        label=label,
        spacing=grid.spacing,
        origin=grid.origin,
        patient=spec.patient,
        scan=spec.scan,
        ablation=spec.ablation,
        cavity=cavity,
        wall=wall,
        meta={
            "source": "phantom",
            "profile": profile.name,
            "seed": seed,
            "families": {**spec.families, "grid": profile.name},
            "true_scar_percent_of_wall": 100.0 * int(la.scar_fine.sum()) / n_wall_fine if n_wall_fine else 0.0,
        },
    )


def generate_cohort(n_patients: int, profile: str = "utah", seed: int = 0,
                    families: Mapping[str, Sequence[str]] | None = None) -> Iterator[Case]:
    """All scans of a phantom cohort, one at a time (a full-size scan is 30-150 MB)."""
    for spec in cohort(n_patients, seed, profile=profile, families=families):
        yield generate_scan(spec, profile, seed)
