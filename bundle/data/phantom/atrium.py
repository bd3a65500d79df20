"""The left atrium of a phantom patient: body, pulmonary veins, appendage and the LA wall.

Coordinates are world millimetres in LPS (+x patient left, +y posterior, +z superior) with the
LA body centred at the origin. The cavity is a smooth union of a randomly sized and rotated main
ellipsoid with one or two overlapping lobes (so bodies are not all ellipsoids), deformed by a smooth
random displacement of a few mm; pulmonary-vein tubes leaving its posterior surface in one of the
variants of the ``anatomy`` family (four ostia, a common left trunk, a right middle vein); and a curved,
tapering appendage. The label holds each vein up to a cut 5-20 mm from its ostium; beyond it the vein goes on
(unlabelled, :attr:`Atrium.distal`), divides and runs into the lung, as real veins do. The wall is a 2-3 mm shell
measured with an exact Euclidean distance transform on a supersampled grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from bundle.data.phantom import shapes
from bundle.data.phantom.shapes import Grid

WALL_MM = (2.0, 3.0)
"""Range of the LA wall thickness (smoothly varying over the surface)."""
BODY_RADII_MM = ((28.0, 37.0), (13.0, 19.0), (15.0, 20.0))
"""Ranges of the main body's semi-axes (x, y, z): with veins and appendage, LA extents of about 85-115 x 45-65 x
40-55 mm, as the real full-field LA masks of the CARMA toolkit in-plane (89-114 x 44-63 mm, 59-105 ml of cavity);
z stays within the 55 mm the 2018 challenge's 88 slices of 0.625 mm cover."""
VEIN_RADIUS_MM = (4.5, 8.5)
"""Ostial radius of a vein (ostia 9-17 mm wide; CT of AF patients, Kato et al. 2003)."""
VEIN_LABEL_MM = (8.0, 22.0)
"""How far from its ostium a vein is labelled LA (the cut a manual segmentation makes, roughly at the first
branching): beyond it the vein goes on unlabelled."""
DISTAL_MM = (15.0, 35.0)
"""Length of each unlabelled distal vein segment towards the lung."""
DEFORMATION_MM = (1.5, 4.5)
"""Amplitude range of each of the smooth sinusoidal displacement components."""

# Ostium directions (x, y, z) before normalisation; left veins go to +x, all leave the posterior wall (+y).
VEIN_DIRECTIONS = {
    "LSPV": (0.9, 0.35, 0.25),
    "LIPV": (0.95, 0.35, -0.15),
    "RSPV": (-0.9, 0.35, 0.25),
    "RIPV": (-0.95, 0.35, -0.15),
}
VARIANT_VEINS = {
    "standard": ("LSPV", "LIPV", "RSPV", "RIPV"),
    "left_common": ("LCPV", "RSPV", "RIPV"),
    "right_middle": ("LSPV", "LIPV", "RSPV", "RMPV", "RIPV"),
}
"""The veins of each pulmonary-vein variant (the ``anatomy`` family)."""
EXTRA_DIRECTIONS = {"LCPV": (0.95, 0.35, 0.05), "RMPV": (-0.95, 0.25, 0.05)}
TRUNK_RADIUS_MM = (7.5, 11.0)
"""A common left trunk is wider than a single vein (ostium 15-22 mm)."""
MIDDLE_RADIUS_MM = (3.0, 5.0)
"""A right middle vein is the smallest (ostium 6-10 mm)."""


@dataclass
class Vein:
    name: str
    ostium: np.ndarray  # on the body surface, mm
    direction: np.ndarray  # unit vector pointing away from the LA
    radius: float
    length: float  # the labelled part, from the ostium

    @property
    def end(self) -> np.ndarray:
        return self.ostium + self.length * self.direction


@dataclass
class Atrium:
    """Parameters of one patient's LA; ``cavity_sdf`` evaluates the deformed cavity.

    ``body`` is a list of ellipsoids (centre, radii, rotation), the first the main one (``radii``, ``rot``);
    ``appendage`` a chain of points with radii (a tapering tube); ``distal`` the unlabelled vein segments
    (start, end, radius) beyond the labelled veins.
    """

    radii: np.ndarray
    rot: np.ndarray
    veins: list[Vein]
    appendage: list[tuple[np.ndarray, float]]
    deform: list[tuple[np.ndarray, np.ndarray, float]]  # (amplitude vector, wave vector, phase)
    wall_wave: tuple[np.ndarray, float] = field(default_factory=lambda: (np.zeros(3), 0.0))
    lobes: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    distal: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)
    variant: str = "standard"

    def _displace(self, x, y, z):
        dx = dy = dz = 0.0
        for amp, k, phase in self.deform:
            s = np.sin(k[0] * x + k[1] * y + k[2] * z + phase)
            dx, dy, dz = dx + amp[0] * s, dy + amp[1] * s, dz + amp[2] * s
        return x + dx, y + dy, z + dz

    def cavity_sdf(self) -> shapes.Sdf:
        body = [shapes.ellipsoid((0.0, 0.0, 0.0), self.radii, self.rot)]
        body += [shapes.ellipsoid(c, r, rot) for c, r, rot in self.lobes]
        parts = [shapes.smooth_union(body, k=8.0) if len(body) > 1 else body[0]]
        for v in self.veins:
            parts.append(shapes.cylinder(v.ostium - 6.0 * v.direction, v.end, v.radius))
        for (p0, r0), (p1, r1) in zip(self.appendage[:-1], self.appendage[1:]):
            parts.append(shapes.round_cone(p0, p1, r0, r1))
        blended = shapes.smooth_union(parts, k=4.0)

        def sdf(x, y, z):
            return blended(*self._displace(x, y, z))

        return sdf

    def wall_thickness(self, x, y, z) -> np.ndarray:
        """Smoothly varying wall thickness in [WALL_MM[0], WALL_MM[1]]."""
        k, phase = self.wall_wave
        s = 0.5 + 0.5 * np.sin(k[0] * x + k[1] * y + k[2] * z + phase)
        return WALL_MM[0] + (WALL_MM[1] - WALL_MM[0]) * s

    def extent(self) -> np.ndarray:
        """Half-size (x, y, z) of a box around the body, lobes, veins, appendage and wall."""
        pts = [np.sqrt(((self.rot * self.radii[None, :]) ** 2).sum(axis=1))]
        pts += [np.abs(c) + np.sqrt(((rot * r[None, :]) ** 2).sum(axis=1)) for c, r, rot in self.lobes]
        pts += [np.abs(v.end) + v.radius for v in self.veins]
        pts += [np.abs(p) + r for p, r in self.appendage]
        reach = np.max(np.vstack(pts), axis=0)
        deform = sum(np.abs(a) for a, _, _ in self.deform) if self.deform else 0.0
        return reach + deform + WALL_MM[1] + 4.0

    def support(self, direction, step_mm: float = 0.25) -> float:
        """Where the LA's outer surface (cavity plus the thickest wall) lies along the ray from its centre in
        ``direction``: the last exit of the deformed cavity within ``extent`` (sampled every ``step_mm``), plus
        :data:`WALL_MM` [1]; a neighbouring structure placed there touches the LA."""
        d = np.asarray(direction, float) / np.linalg.norm(direction)
        t = np.arange(0.0, float(np.linalg.norm(self.extent())), step_mm)
        inside = self.cavity_sdf()(t * d[0], t * d[1], t * d[2]) < 0
        last = int(np.flatnonzero(inside)[-1]) if inside.any() else 0
        return float(t[last]) + WALL_MM[1]

    def posterior_reach(self) -> float:
        """How far the LA body and wall reach towards +y (posterior): where the oesophagus starts."""
        return self.support((0.0, 1.0, 0.0))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _vein(rng: np.random.Generator, name: str, radii: np.ndarray, rot: np.ndarray, variant: str) -> Vein:
    base = VEIN_DIRECTIONS.get(name) or EXTRA_DIRECTIONS[name]
    d = _unit(np.asarray(base) + rng.normal(0, 0.1, size=3))
    local = rot.T @ d
    t = 1.0 / np.sqrt(((local / radii) ** 2).sum())  # where the ray leaves the (undeformed) body
    if name == "LCPV":
        radius = rng.uniform(*TRUNK_RADIUS_MM)
    elif name == "RMPV":
        radius = rng.uniform(*MIDDLE_RADIUS_MM)
    else:
        radius = rng.uniform(*VEIN_RADIUS_MM)
    return Vein(name, t * d, d, radius, rng.uniform(*VEIN_LABEL_MM))


def _distal(rng: np.random.Generator, vein: Vein) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """The unlabelled continuation of a vein: one segment, or two branches (a common trunk always divides), each
    bending a little towards the lateral lung and narrowing."""
    lateral = np.array([np.sign(vein.direction[0]) or 1.0, 0.3, 0.0])
    n_branches = 2 if vein.name == "LCPV" or rng.uniform() < 0.4 else 1
    out = []
    for b in range(n_branches):
        tilt = np.array([0.0, 0.0, (0.5 if b == 0 else -0.5) if n_branches == 2 else 0.0])
        d = _unit(vein.direction + 0.4 * _unit(lateral) + tilt + rng.normal(0, 0.12, size=3))
        r = vein.radius * (rng.uniform(0.6, 0.8) if n_branches == 2 else rng.uniform(0.75, 0.95))
        start = vein.end - 1.0 * vein.direction
        out.append((start, start + rng.uniform(*DISTAL_MM) * d, max(r, 2.0)))
    return out


def _appendage(rng: np.random.Generator, radii: np.ndarray, rot: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """A curved, tapering finger from the anterior-left-superior body: 3-4 points with radii."""
    a_dir = _unit(np.array([0.8, -0.5, 0.3]) + rng.normal(0, 0.1, size=3))
    t = 1.0 / np.sqrt((((rot.T @ a_dir) / radii) ** 2).sum())
    r = rng.uniform(6.0, 10.0)
    points = [((t - 0.5 * r) * a_dir, r)]
    heading = a_dir
    for _ in range(int(rng.integers(2, 4))):
        heading = _unit(heading + np.array([0.1, -0.25, -0.45]) * rng.uniform(0.2, 0.8) + rng.normal(0, 0.15, 3))
        r = max(3.0, r * rng.uniform(0.7, 0.95))
        points.append((points[-1][0] + rng.uniform(7, 13) * heading, r))
    return points


def sample_atrium(rng: np.random.Generator, variant: str = "standard") -> Atrium:
    """A random LA of plausible adult AF size with the pulmonary-vein ``variant`` (``VARIANT_VEINS``)."""
    if variant not in VARIANT_VEINS:
        raise ValueError(f"unknown anatomy variant {variant!r}; choose one of {', '.join(VARIANT_VEINS)}")
    radii = np.array([rng.uniform(*r) for r in BODY_RADII_MM])
    rot = shapes.rotation(tuple(rng.uniform(-20, 20, size=3)))
    lobes = []
    for _ in range(int(rng.integers(0, 3))):  # bulges: the roof, the septal side, the floor...
        centre = rot @ (radii * rng.uniform(-0.45, 0.45, size=3))
        lobe_radii = radii * rng.uniform(0.5, 0.8, size=3)
        lobes.append((centre, lobe_radii, shapes.rotation(tuple(rng.uniform(-30, 30, size=3)))))
    veins = [_vein(rng, name, radii, rot, variant) for name in VARIANT_VEINS[variant]]
    appendage = _appendage(rng, radii, rot)
    deform = []
    for _ in range(int(rng.integers(3, 6))):
        direction = _unit(rng.normal(size=3))
        wavelength = rng.uniform(30, 80)
        k = 2 * np.pi / wavelength * direction
        amp = rng.normal(size=3)
        amp *= rng.uniform(*DEFORMATION_MM) / np.linalg.norm(amp)
        deform.append((amp, k, rng.uniform(0, 2 * np.pi)))
    wdir = _unit(rng.normal(size=3))
    wall_wave = (2 * np.pi / rng.uniform(30, 60) * wdir, rng.uniform(0, 2 * np.pi))
    distal = [segment for v in veins for segment in _distal(rng, v)]
    return Atrium(radii, rot, veins, appendage, deform, wall_wave, lobes, distal, variant)


@dataclass
class AtriumRaster:
    """The LA on a supersampled grid: boolean cavity and wall, and the fine grid itself."""

    slices: tuple[slice, slice, slice]  # where the coarse box sits in the scan
    grid: Grid  # the coarse box
    sub: tuple[int, int, int]
    cavity: np.ndarray  # fine, bool
    wall: np.ndarray  # fine, bool

    def fine_axes(self):
        return self.grid.axes(self.sub)

    def fine_spacing(self) -> tuple[float, float, float]:
        """Fine voxel size (x, y, z) in mm."""
        fz, fy, fx = self.sub
        sx, sy, sz = self.grid.spacing
        return (sx / fx, sy / fy, sz / fz)


def _distance_outside(mask: np.ndarray, spacing_xyz: tuple[float, float, float]) -> np.ndarray:
    """Exact Euclidean distance (mm) of every voxel outside ``mask`` to the nearest voxel of it (inf if empty).

    SimpleITK's Maurer transform, multi-threaded and about 9x faster than ``scipy.ndimage.distance_transform_edt``
    on the supersampled LA box (the same values within 1e-5 mm); values inside the mask are not used.
    """
    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    dist = sitk.SignedMaurerDistanceMap(image, insideIsPositive=False, squaredDistance=False, useImageSpacing=True)
    return sitk.GetArrayFromImage(dist)


def rasterise_atrium(atrium: Atrium, grid: Grid, sub: tuple[int, int, int], center: np.ndarray) -> AtriumRaster:
    """Cavity and wall of ``atrium`` placed at world ``center`` on the supersampled grid.

    The wall is every voxel outside the cavity within the local wall thickness of it (exact
    Euclidean distance on the fine grid), except beyond the open ends of the vein tubes.
    """
    ext = atrium.extent()
    sl, box = grid.crop(center - ext, center + ext)
    local = Grid(box.shape, box.spacing, tuple(np.asarray(box.origin) - center))
    stretch = 1.0 + sum(float(np.abs(a).sum() * np.linalg.norm(k)) for a, k, _ in atrium.deform)
    cavity = shapes.supersampled_mask(atrium.cavity_sdf(), local, sub, lipschitz=stretch)
    fz, fy, fx = sub
    sx, sy, sz = box.spacing
    dist = _distance_outside(cavity, (sx / fx, sy / fy, sz / fz))
    idx = np.nonzero(~cavity & (dist <= WALL_MM[1]))
    x, y, z = local.axes(sub)
    px, py, pz = x.ravel()[idx[2]], y.ravel()[idx[1]], z.ravel()[idx[0]]
    keep = dist[idx] <= atrium.wall_thickness(px, py, pz)
    for v in atrium.veins:  # open vein ends: no wall cap beyond the end plane
        qx, qy, qz = px - v.end[0], py - v.end[1], pz - v.end[2]
        h = qx * v.direction[0] + qy * v.direction[1] + qz * v.direction[2]
        rho2 = qx * qx + qy * qy + qz * qz - h * h
        keep &= ~((h > -0.5) & (rho2 < (v.radius + WALL_MM[1] + 1.0) ** 2))
    wall = np.zeros(cavity.shape, bool)
    wall[tuple(i[keep] for i in idx)] = True
    return AtriumRaster(sl, box, sub, cavity, wall)
