"""Synthetic 3D LGE CMR phantoms of AF patients, with LA and scar ground truth.

Each patient has one anatomy (LA and thorax); a patient may have a pre-ablation scan, a
post-ablation scan or both, each with its own field of view, scar and acquisition. Everything
is drawn from ``numpy.random.default_rng`` seeded by (seed, patient, scan), so a dataset is a
pure function of its seed and profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bundle.data.case import Case
from bundle.data.labels import compose_label
from bundle.data.phantom.atrium import rasterise_atrium, sample_atrium
from bundle.data.phantom.context import sample_context
from bundle.data.phantom.intensity import Acquisition, acquire
from bundle.data.phantom.profiles import Profile, get_profile
from bundle.data.phantom.scar import draw_scar
from bundle.data.phantom.shapes import Grid, block_mean, coverage

LA_MIN_FRACTION = 0.5
"""A voxel is LA when LA tissue (cavity + wall + scar) fills at least half of it."""
SCAR_MIN_FRACTION = 0.25
"""An LA voxel is scar when scar fills at least this much of it and outweighs healthy wall."""
BOTH_SCANS_FRACTION = 0.6
"""Share of patients with both a pre- and a post-ablation scan; the others have one of them."""


@dataclass(frozen=True)
class ScanSpec:
    patient_index: int
    ablation: str  # "pre" or "post"

    @property
    def patient(self) -> str:
        return f"P{self.patient_index:03d}"

    @property
    def scan(self) -> str:
        return f"{self.patient}_{self.ablation}"


def cohort(n_patients: int, seed: int = 0, both_fraction: float = BOTH_SCANS_FRACTION) -> list[ScanSpec]:
    """Which scans a cohort of ``n_patients`` has, in a fixed order."""
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
    return specs


def _scan_grid(profile: Profile, rng: np.random.Generator, centre_xy: np.ndarray) -> Grid:
    n = int(rng.choice(profile.in_plane_sizes))
    nz = int(rng.integers(profile.slices[0], profile.slices[1] + 1))
    jitter = 10.0 if profile.centre_on == "body" else 3.0
    centre = np.array([centre_xy[0] + rng.normal(0, jitter), centre_xy[1] + rng.normal(0, jitter), rng.uniform(-6, 6)])
    size = np.array([n, n, nz], float)
    origin = centre - 0.5 * (size - 1) * np.asarray(profile.spacing)
    return Grid((nz, n, n), profile.spacing, tuple(float(o) for o in np.round(origin, 4)))


def _paint(parts, grid: Grid, profile: Profile, mu: dict[str, float]) -> np.ndarray:
    """The noiseless tissue-intensity volume of the context ``parts``, painted in order (later over earlier).

    The leading columns along z (body outline, chest wall, thorax) are painted on one slice that then fills
    every slice: they are the same on all slices, and painting them in 3D was a quarter of the time.
    """
    clean2d = np.zeros((1, *grid.shape[1:]), np.float32)
    lead = 0
    while lead < len(parts) and parts[lead].z_invariant:
        part = parts[lead]
        sl, frac = coverage(part.sdf, grid, profile.supersample, part.lo, part.hi, True)
        clean2d[sl] += frac * (mu[part.tissue] - clean2d[sl])
        lead += 1
    clean = np.repeat(clean2d, grid.shape[0], axis=0)
    for part in parts[lead:]:
        sl, frac = coverage(part.sdf, grid, profile.supersample, part.lo, part.hi, part.z_invariant)
        region = clean[sl]
        region += frac * (mu[part.tissue] - region)
    return clean


def generate_scan(spec: ScanSpec, profile: str | Profile = "miccai2018", seed: int = 0, acquisition: Acquisition | None = None) -> Case:
    """One phantom scan as a :class:`Case` with image, label, cavity and wall.

    ``acquisition`` overrides the randomly drawn acquisition (``Acquisition.nominal()`` gives
    the calibrated tissue means without gain, gamma, bias or jitter).
    """
    profile = get_profile(profile) if isinstance(profile, str) else profile
    patient_rng = np.random.default_rng([seed, spec.patient_index])
    atrium = sample_atrium(patient_rng)
    parts, body_xy = sample_context(patient_rng, atrium)
    rng = np.random.default_rng([seed, spec.patient_index, 1 if spec.ablation == "post" else 0])
    grid = _scan_grid(profile, rng, body_xy if profile.centre_on == "body" else np.zeros(2))
    drawn = Acquisition.sample(rng)  # always drawn, so an override leaves the scar stream unchanged
    acq = acquisition or drawn
    mu = acq.tissue_means

    clean = _paint(parts, grid, profile, mu)

    la_centre = np.zeros(3)
    raster = rasterise_atrium(atrium, grid, profile.supersample, la_centre)
    scar_fine = draw_scar(rng, atrium, raster, la_centre, spec.ablation)
    cav = block_mean(raster.cavity, profile.supersample)
    wall = block_mean(raster.wall & ~scar_fine, profile.supersample)
    scar = block_mean(scar_fine, profile.supersample)
    total = cav + wall + scar
    box = clean[raster.slices]
    clean[raster.slices] = box * (1.0 - total) + cav * mu["blood_la"] + wall * mu["la_wall"] + scar * mu["scar"]

    la_box = total >= LA_MIN_FRACTION
    scar_box = la_box & (scar >= SCAR_MIN_FRACTION) & (scar >= wall)
    cavity_box = la_box & (cav >= 0.5) & ~scar_box
    # full-size arrays are few and written only in the LA box (fresh pages cost more than the arithmetic)
    label = np.zeros(grid.shape, np.uint8)
    label[raster.slices] = compose_label(la_box, scar_box)
    cavity = np.zeros(grid.shape, np.uint8)
    cavity[raster.slices] = cavity_box
    wall_lab = np.zeros(grid.shape, np.uint8)
    wall_lab[raster.slices] = la_box & ~cavity_box

    image = acquire(clean, grid.spacing, acq, rng, in_place=True)
    n_wall_fine = int(raster.wall.sum())
    return Case(
        image=image,
        label=label,
        spacing=grid.spacing,
        origin=grid.origin,
        patient=spec.patient,
        scan=spec.scan,
        ablation=spec.ablation,
        cavity=cavity,
        wall=wall_lab,
        meta={
            "source": "phantom",
            "profile": profile.name,
            "seed": seed,
            "true_scar_percent_of_wall": 100.0 * int(scar_fine.sum()) / n_wall_fine if n_wall_fine else 0.0,
        },
    )


def generate_cohort(n_patients: int, profile: str = "miccai2018", seed: int = 0) -> Iterator[Case]:
    """All scans of a phantom cohort, one at a time (a full-size scan is ~60 MB)."""
    for spec in cohort(n_patients, seed):
        yield generate_scan(spec, profile, seed)
