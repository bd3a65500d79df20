"""Atrial scar inside the LA wall: fibrotic patches, and ablation lesions around the vein ostia.

Pre-ablation scans carry a few small fibrotic patches (about 0-8 % of the wall). Post-ablation
scans carry the lesions of pulmonary-vein isolation, partial rings around the ostia (gaps are
the incomplete lines seen in practice), plus patches, for about 10-35 % of the wall. Lesions are
drawn on the supersampled LA grid and are always intersected with the wall.
"""

from __future__ import annotations

import numpy as np

from bundle.data.phantom.atrium import Atrium, AtriumRaster

PRE_SCAR_FRACTION = (0.0, 0.08)
POST_SCAR_FRACTION = (0.10, 0.35)
PATCH_RADIUS_MM = (2.5, 7.0)
RING_WIDTH_MM = (3.0, 7.0)
RING_ARC_DEG = (200.0, 340.0)
MAX_LESIONS = 60


def _box(x, y, z, lo, hi) -> tuple[slice, slice, slice]:
    """Index box (z, y, x) of the fine grid covering the world box [lo, hi] (x, y, z)."""
    out = []
    for axis in (z.ravel(), y.ravel(), x.ravel()):
        k = len(out)
        a = int(np.searchsorted(axis, lo[2 - k], side="left"))
        b = int(np.searchsorted(axis, hi[2 - k], side="right"))
        out.append(slice(a, b))
    return tuple(out)


def _patch(rng, x, y, z, wall_idx):
    """An irregular blob centred on a random wall voxel: (index box, mask in that box)."""
    i = rng.integers(wall_idx[0].size)
    cz, cy, cx = (w[i] for w in wall_idx)
    c = np.array([x[0, 0, cx], y[0, cy, 0], z[cz, 0, 0]])
    r = rng.uniform(*PATCH_RADIUS_MM)
    box = _box(x, y, z, c - 1.35 * r, c + 1.35 * r)
    bx, by, bz = x[:, :, box[2]], y[:, box[1], :], z[box[0], :, :]
    k = rng.normal(size=3)
    k *= 2 * np.pi / (r * 2.5) / np.linalg.norm(k)
    d = np.sqrt((bx - c[0]) ** 2 + (by - c[1]) ** 2 + (bz - c[2]) ** 2)
    wobble = 1.0 + 0.3 * np.sin(k[0] * bx + k[1] * by + k[2] * bz + rng.uniform(0, 2 * np.pi))
    return box, d < r * wobble


def _ring(rng, atrium: Atrium, vein_index: int, x, y, z):
    """A torus-shaped lesion around one vein ostium on a random arc: (index box, mask in that box)."""
    v = atrium.veins[vein_index]
    a = v.direction
    centre = v.ostium + rng.uniform(-2.0, 3.0) * a
    ring_r = v.radius + rng.uniform(1.0, 3.0)
    width = rng.uniform(*RING_WIDTH_MM)
    reach = ring_r + width
    box = _box(x, y, z, centre - reach, centre + reach)
    bx, by, bz = x[:, :, box[2]], y[:, box[1], :], z[box[0], :, :]
    e1 = np.cross(a, [0.0, 0.0, 1.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(a, e1)
    px, py, pz = bx - centre[0], by - centre[1], bz - centre[2]
    h = px * a[0] + py * a[1] + pz * a[2]
    u = px * e1[0] + py * e1[1] + pz * e1[2]
    w = px * e2[0] + py * e2[1] + pz * e2[2]
    tube = (np.sqrt(u * u + w * w) - ring_r) ** 2 + h * h < (0.5 * width) ** 2
    start = rng.uniform(-np.pi, np.pi)
    arc = np.deg2rad(rng.uniform(*RING_ARC_DEG))
    theta = np.mod(np.arctan2(w, u) - start, 2 * np.pi)
    return box, tube & (theta < arc)


def draw_scar(rng: np.random.Generator, atrium: Atrium, raster: AtriumRaster, center, ablation: str) -> np.ndarray:
    """Boolean scar on the fine grid of ``raster`` (a subset of its wall).

    Draws a target wall fraction from the pre- or post-ablation range, then adds lesions (rings
    first after ablation, then patches) until the target is reached.
    """
    lo, hi = POST_SCAR_FRACTION if ablation == "post" else PRE_SCAR_FRACTION
    wall = raster.wall
    scar = np.zeros_like(wall)
    goal = rng.uniform(lo, hi) * int(wall.sum())
    if goal <= 0:
        return scar
    x, y, z = raster.fine_axes()
    x, y, z = x - center[0], y - center[1], z - center[2]
    count = 0

    def add(box, mask) -> int:
        new = mask & wall[box] & ~scar[box]
        scar[box] |= new
        return int(new.sum())

    if ablation == "post":
        for vi in rng.permutation(len(atrium.veins)):
            count += add(*_ring(rng, atrium, int(vi), x, y, z))
            if count >= goal:
                return scar
    wall_idx = np.nonzero(wall)
    for _ in range(MAX_LESIONS):
        if count >= goal:
            break
        count += add(*_patch(rng, x, y, z, wall_idx))
    return scar
