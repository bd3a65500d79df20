"""Implicit shapes in millimetres and their partial-volume rasterisation.

Every shape is a function ``sdf(x, y, z) -> d`` over broadcastable coordinate arrays in mm,
negative inside. ``d`` is a signed distance or an under-estimate of it (|gradient| <= ~1), so
``|d| >= h`` proves that a voxel of half-diagonal ``h`` lies wholly inside or outside: only the
voxels in that band are supersampled, which keeps full field-of-view rasterisation cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

Sdf = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def rotation(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Rotation matrix from angles about the fixed x, y and z axes (degrees), applied in that order (Rz Ry Rx)."""
    return Rotation.from_euler("xyz", angles_deg, degrees=True).as_matrix()


def _local(x, y, z, center, rot):
    """Coordinates of (x, y, z) in a frame centred at ``center`` with axes the columns of ``rot``."""
    dx, dy, dz = x - center[0], y - center[1], z - center[2]
    return (
        rot[0, 0] * dx + rot[1, 0] * dy + rot[2, 0] * dz,
        rot[0, 1] * dx + rot[1, 1] * dy + rot[2, 1] * dz,
        rot[0, 2] * dx + rot[1, 2] * dy + rot[2, 2] * dz,
    )


def ellipsoid(center, radii, rot=None) -> Sdf:
    """Ellipsoid; ``(|q / r| - 1) * min(r)`` under-estimates the distance, as required."""
    rot = np.eye(3) if rot is None else np.asarray(rot, float)
    r = np.asarray(radii, float)

    def sdf(x, y, z):
        u, v, w = _local(x, y, z, center, rot)
        return (np.sqrt((u / r[0]) ** 2 + (v / r[1]) ** 2 + (w / r[2]) ** 2) - 1.0) * r.min()

    return sdf


def capsule(p0, p1, radius: float) -> Sdf:
    """Segment p0-p1 swept by a ball: an exact signed distance."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    ab = b - a
    ab2 = float(ab @ ab)

    def sdf(x, y, z):
        px, py, pz = x - a[0], y - a[1], z - a[2]
        t = np.clip((px * ab[0] + py * ab[1] + pz * ab[2]) / ab2, 0.0, 1.0)
        return np.sqrt((px - t * ab[0]) ** 2 + (py - t * ab[1]) ** 2 + (pz - t * ab[2]) ** 2) - radius

    return sdf


def round_cone(p0, p1, r0: float, r1: float) -> Sdf:
    """Segment p0-p1 swept by a ball whose radius goes linearly from ``r0`` to ``r1``: the convex hull of the two
    end balls (an exact signed distance; the closed form of Quilez's "round cone"). Needs ``|r0 - r1| < |p1 - p0|``."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    ba = b - a
    l2 = float(ba @ ba)
    rr = float(r0 - r1)
    a2 = l2 - rr * rr
    if a2 <= 0:
        raise ValueError("round_cone: the radii differ by more than the segment's length")
    il2 = 1.0 / l2

    def sdf(x, y, z):
        pa = (x - a[0], y - a[1], z - a[2])
        t = pa[0] * ba[0] + pa[1] * ba[1] + pa[2] * ba[2]
        u = t - l2
        x2 = sum((pa[i] * l2 - ba[i] * t) ** 2 for i in range(3))
        y2, z2 = t * t * l2, u * u * l2
        k = np.sign(rr) * rr * rr * x2
        near_b = np.sign(u) * a2 * z2 > k
        near_a = np.sign(t) * a2 * y2 < k
        side = (np.sqrt(x2 * a2 * il2) + t * rr) * il2 - r0
        return np.where(near_b, np.sqrt(x2 + z2) * il2 - r1, np.where(near_a, np.sqrt(x2 + y2) * il2 - r0, side))

    return sdf


def cylinder(p0, p1, radius: float) -> Sdf:
    """Flat-ended cylinder from p0 to p1 (exact signed distance)."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    axis = b - a
    length = float(np.linalg.norm(axis))
    axis = axis / length

    def sdf(x, y, z):
        px, py, pz = x - a[0] - 0.5 * length * axis[0], y - a[1] - 0.5 * length * axis[1], z - a[2] - 0.5 * length * axis[2]
        h = px * axis[0] + py * axis[1] + pz * axis[2]
        rho = np.sqrt(np.maximum(px * px + py * py + pz * pz - h * h, 0.0))
        dr, dh = rho - radius, np.abs(h) - 0.5 * length
        outside = np.sqrt(np.maximum(dr, 0.0) ** 2 + np.maximum(dh, 0.0) ** 2)
        return outside + np.minimum(np.maximum(dr, dh), 0.0)

    return sdf


def elliptic_column(center_xy, radii_xy) -> Sdf:
    """Infinite elliptic cylinder along z (body outline, spine): an under-estimated distance."""
    cx, cy = center_xy
    rx, ry = radii_xy

    def sdf(x, y, z):
        return (np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) - 1.0) * min(rx, ry) + 0.0 * z

    return sdf


def offset(shape: Sdf, distance: float) -> Sdf:
    """The shape grown by ``distance`` mm (shrunk when negative)."""
    return lambda x, y, z: shape(x, y, z) - distance


def union(*shapes: Sdf) -> Sdf:
    """Union of shapes (minimum of their distances)."""

    def sdf(x, y, z):
        d = shapes[0](x, y, z)
        for s in shapes[1:]:
            d = np.minimum(d, s(x, y, z))
        return d

    return sdf


def smooth_union(shapes: list[Sdf], k: float) -> Sdf:
    """Polynomial smooth minimum (blend radius ``k`` mm): rounded junctions such as vein ostia."""

    def sdf(x, y, z):
        d = shapes[0](x, y, z)
        for s in shapes[1:]:
            e = s(x, y, z)
            h = np.clip(0.5 + 0.5 * (e - d) / k, 0.0, 1.0)
            d = e * (1 - h) + d * h - k * h * (1 - h)
        return d

    return sdf


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid: ``shape`` (z, y, x), ``spacing`` and ``origin`` (x, y, z) in mm.

    World coordinates of voxel ``(k, j, i)`` are ``origin + (i, j, k) * spacing`` (identity direction).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    def axes(self, sub: tuple[int, int, int] = (1, 1, 1)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable world coordinates (x, y, z) of voxel centres, or of ``sub`` sub-voxel centres."""
        out = []
        for axis, n in zip((2, 1, 0), (self.shape[2], self.shape[1], self.shape[0])):
            f = sub[axis]
            s, o = self.spacing[2 - axis], self.origin[2 - axis]
            out.append(o + s * ((np.arange(n * f, dtype=np.float32) + 0.5) / f - 0.5))
        x, y, z = out
        return x[None, None, :], y[None, :, None], z[:, None, None]

    def crop(self, lo_mm, hi_mm) -> tuple[tuple[slice, slice, slice], Grid]:
        """Sub-grid of the voxels whose centres may touch the world box [lo_mm, hi_mm] (x, y, z)."""
        sl, shape, origin = [], [], []
        for axis in range(3):  # x, y, z
            s, o, n = self.spacing[axis], self.origin[axis], self.shape[2 - axis]
            a = int(np.clip(np.floor((lo_mm[axis] - o) / s) - 1, 0, n))
            b = int(np.clip(np.ceil((hi_mm[axis] - o) / s) + 2, a, n))
            sl.append(slice(a, b))
            shape.append(b - a)
            origin.append(o + a * s)
        return (sl[2], sl[1], sl[0]), Grid((shape[2], shape[1], shape[0]), self.spacing, tuple(origin))


def block_mean(a: np.ndarray, sub: tuple[int, int, int]) -> np.ndarray:
    """Average ``sub`` (z, y, x) blocks of a supersampled array back to the voxel grid (a boolean array is
    counted in small integers first: three times faster than a float mean)."""
    fz, fy, fx = sub
    nz, ny, nx = a.shape[0] // fz, a.shape[1] // fy, a.shape[2] // fx
    blocks = a.reshape(nz, fz, ny, fy, nx, fx)
    if a.dtype == bool and fz * fy * fx < 2**16:
        counts = blocks.view(np.uint8).sum(axis=5, dtype=np.uint16).sum(axis=3, dtype=np.uint16).sum(axis=1, dtype=np.uint16)
        return counts.astype(np.float32) * np.float32(1.0 / (fz * fy * fx))
    return blocks.mean(axis=(1, 3, 5), dtype=np.float32)


BLOCK_MM = 5.0
"""Side of the blocks whose centres are tested first: a block farther from the surface than its own reach is
decided as a whole, so only blocks near a surface are evaluated voxel by voxel (cost ~ surface, not volume)."""


def _sample_reach(spacing, sub: tuple[int, int, int]) -> float:
    """Distance from a voxel centre to its farthest sub-voxel centre: beyond it, every sample agrees in sign."""
    fz, fy, fx = sub
    sx, sy, sz = spacing
    return float(np.linalg.norm([sx * (fx - 1) / (2 * fx), sy * (fy - 1) / (2 * fy), sz * (fz - 1) / (2 * fz)]))


def _part_grid(grid: Grid, lo_mm, hi_mm, z_invariant: bool) -> tuple[tuple[slice, slice, slice], Grid]:
    """The slices of ``grid`` around the world box [lo_mm, hi_mm] (the whole grid when no box is given) and their
    grid; a ``z_invariant`` part's grid is one slice, its slices every slice."""
    sl, g = ((slice(None),) * 3, grid) if lo_mm is None else grid.crop(lo_mm, hi_mm)
    if z_invariant:
        return (slice(None), sl[1], sl[2]), Grid((1, g.shape[1], g.shape[2]), g.spacing, g.origin)
    return sl, g


def _block_centres(grid: Grid, block: tuple[int, int, int]) -> Grid:
    """The grid of the centres of ``block`` (z, y, x) voxel blocks covering ``grid`` (the last ones partial)."""
    (nz, ny, nx), (bz, by, bx), (sx, sy, sz) = grid.shape, block, grid.spacing
    return Grid((-(-nz // bz), -(-ny // by), -(-nx // bx)), (sx * bx, sy * by, sz * bz),
                tuple(o + s * (b - 1) / 2 for o, s, b in zip(grid.origin, grid.spacing, (bx, by, bz))))


def _block_voxels(blocks: tuple[np.ndarray, ...], block: tuple[int, int, int], shape: tuple[int, int, int]):
    """The voxel indices (z, y, x), inside a grid of ``shape``, of the ``blocks`` (indices of ``block``-sized
    blocks)."""
    offsets = (o.ravel() for o in np.meshgrid(*(np.arange(b) for b in block), indexing="ij"))
    vz, vy, vx = ((n[:, None] * b + o).ravel() for n, b, o in zip(blocks, block, offsets))
    keep = (vz < shape[0]) & (vy < shape[1]) & (vx < shape[2])
    return vz[keep], vy[keep], vx[keep]


def _centres(grid: Grid, vz: np.ndarray, vy: np.ndarray, vx: np.ndarray):
    """World coordinates (x, y, z) of the centres of the voxels (vz, vy, vx) of ``grid`` (float32)."""
    (ox, oy, oz), (sx, sy, sz) = grid.origin, grid.spacing
    return (np.float32(ox) + np.float32(sx) * vx.astype(np.float32),
            np.float32(oy) + np.float32(sy) * vy.astype(np.float32),
            np.float32(oz) + np.float32(sz) * vz.astype(np.float32))


def voxel_sdf(shape: Sdf, grid: Grid, reach: float, lipschitz: float = 1.0) -> np.ndarray:
    """``shape`` at the voxel centres of ``grid``, exact wherever ``|d| < reach``; elsewhere only the sign and
    ``|d| >= reach`` are guaranteed.

    The shape is first evaluated at the centres of blocks of about :data:`BLOCK_MM`; a block whose centre is
    farther than ``lipschitz`` x (block half-diagonal) + ``reach`` from the surface takes that centre value for
    all its voxels, the others are evaluated voxel by voxel.
    """
    nz, ny, nx = grid.shape
    sx, sy, sz = grid.spacing
    block = _blocks(grid)
    if np.prod(block) <= 2:
        return shape(*grid.axes())
    bz, by, bx = block
    centres = _block_centres(grid, block)
    dc = np.broadcast_to(shape(*centres.axes()), centres.shape).astype(np.float32)
    half_block = 0.5 * float(np.linalg.norm([sx * (bx - 1), sy * (by - 1), sz * (bz - 1)]))
    near = np.nonzero(np.abs(dc) < lipschitz * half_block + reach)
    d = dc.repeat(bz, 0).repeat(by, 1).repeat(bx, 2)[:nz, :ny, :nx]
    if near[0].size:
        vz, vy, vx = _block_voxels(near, block, grid.shape)
        d[vz, vy, vx] = shape(*_centres(grid, vz, vy, vx))
    return d


def _blocks(grid: Grid) -> tuple[int, int, int]:
    """Voxels (z, y, x) per block of about :data:`BLOCK_MM` (:func:`voxel_sdf`, :func:`paint`)."""
    sx, sy, sz = grid.spacing
    return tuple(max(1, int(round(BLOCK_MM / s))) for s in (sz, sy, sx))


def _split_blocks(a: np.ndarray, block: tuple[int, int, int]) -> np.ndarray:
    """The whole blocks of a (z, y, x) array (or view) as a view of shape (cz, cy, cx, bz, by, bx)."""
    (bz, by, bx), (nz, ny, nx) = block, a.shape
    cz, cy, cx = nz // bz, ny // by, nx // bx
    return a[:cz * bz, :cy * by, :cx * bx].reshape(cz, bz, cy, by, cx, bx).transpose(0, 2, 4, 1, 3, 5)


def paint(volume: np.ndarray, shape: Sdf, grid: Grid, sub: tuple[int, int, int], value: float,
          lo_mm=None, hi_mm=None, z_invariant: bool = False) -> None:
    """In place: ``volume`` (on ``grid``) += coverage x (``value`` - ``volume``), the partial-volume fraction of
    ``shape`` in each voxel (supersampled ``sub`` times), touching only the voxels the shape reaches.

    ``lo_mm``/``hi_mm`` bound the shape in world mm (None: the whole grid). The shape is evaluated at the centres
    of blocks of about :data:`BLOCK_MM` first: a block whose centre lies deeper inside than its half-diagonal plus
    the sub-voxel reach is set to ``value`` at once, a block as far outside is left alone, and only the blocks in
    between are evaluated voxel by voxel and supersampled where a voxel's samples may disagree. The result equals
    supersampling every voxel, at a cost that follows the shape's volume and surface rather than the grid's. A
    ``z_invariant`` shape (a column along z) is rasterised on one slice and painted on every slice.
    """
    sl, g = _part_grid(grid, lo_mm, hi_mm, z_invariant)
    sub = (1, sub[1], sub[2]) if z_invariant else sub
    region = volume[sl]
    if min(g.shape) == 0 or region.size == 0:
        return
    value = np.float32(value)
    reach = _sample_reach(g.spacing, sub) + 1e-4
    block = (1, 1, 1) if np.prod(_blocks(g)) <= 2 else _blocks(g)
    (nz, ny, nx), (bz, by, bx), (sx, sy, sz) = g.shape, block, g.spacing
    centres = _block_centres(g, block)
    dc = np.broadcast_to(shape(*centres.axes()), centres.shape)
    far = 0.5 * float(np.linalg.norm([sx * (bx - 1), sy * (by - 1), sz * (bz - 1)])) + reach
    inside = dc <= -far
    # whole blocks deep inside are set at once; the grid's partial blocks at its far sides go voxel by voxel
    whole = inside[:nz // bz, :ny // by, :nx // bx]
    if whole.any():
        if z_invariant:  # (cy, cx, z, by, bx) blocks of every slice
            cy, cx = whole.shape[1:]
            blocks = region[:, :cy * by, :cx * bx].reshape(region.shape[0], cy, by, cx, bx).transpose(1, 3, 0, 2, 4)
            inner = whole[0]
        else:
            blocks, inner = _split_blocks(region, block), whole
        current = blocks[inner]
        blocks[inner] = current + (value - current)  # = value, rounded as the partial voxels' blend
    partial = inside.copy()
    partial[:nz // bz, :ny // by, :nx // bx] = False
    near = np.nonzero((np.abs(dc) < far) | partial)
    if not near[0].size:
        return
    vz, vy, vx = _block_voxels(near, block, g.shape)
    d = np.broadcast_to(shape(*_centres(g, vz, vy, vx)), vz.shape)
    band = np.abs(d) < reach
    full = (d < 0) & ~band
    _blend(region, (vz[full], vy[full], vx[full]), value, None, z_invariant)
    if band.any():
        idx = (vz[band], vy[band], vx[band])
        frac = (shape(*_sub_samples(g, idx, sub)) < 0).mean(axis=1).astype(np.float32)
        _blend(region, idx, value, frac, z_invariant)


def _blend(region: np.ndarray, idx, value: np.float32, frac: np.ndarray | None, z_invariant: bool) -> None:
    """In place: the voxels ``idx`` (z, y, x; every slice of their columns when ``z_invariant``) of ``region`` +=
    ``frac`` x (``value`` - them), ``frac`` None meaning 1 (written as a blend so it rounds as the partial voxels)."""
    at = (slice(None), idx[1], idx[2]) if z_invariant else idx
    current = region[at]
    region[at] = current + (value - current) if frac is None else current + frac * (value - current)


def _sub_samples(grid: Grid, idx, sub: tuple[int, int, int]):
    """World coordinates (x, y, z) of the ``sub`` sub-voxel centres of the voxels ``idx`` (z, y, x), each
    (n_voxels, n_sub)."""
    fz, fy, fx = sub
    offsets = [(np.arange(f, dtype=np.float32) + 0.5) / f - 0.5 for f in (fz, fy, fx)]
    kz, ky, kx = np.meshgrid(*offsets, indexing="ij")
    sx, sy, sz = grid.spacing
    px = (grid.origin[0] + sx * idx[2]).astype(np.float32)[:, None] + sx * kx.ravel()[None]
    py = (grid.origin[1] + sy * idx[1]).astype(np.float32)[:, None] + sy * ky.ravel()[None]
    pz = (grid.origin[2] + sz * idx[0]).astype(np.float32)[:, None] + sz * kz.ravel()[None]
    return px, py, pz


def coverage(shape: Sdf, grid: Grid, sub: tuple[int, int, int], lo_mm=None, hi_mm=None, z_invariant: bool = False):
    """Partial-volume fraction of ``shape`` in each voxel of ``grid`` (supersample, then average).

    Returns ``(slices, fraction)`` for the sub-grid around the world box [lo_mm, hi_mm] (the whole
    grid when no box is given): :func:`paint` of 1 on zeros. A ``z_invariant`` shape (a column along z) is
    rasterised on one slice and returned with a z size of 1, to broadcast over the slices.
    """
    sl, g = _part_grid(grid, lo_mm, hi_mm, z_invariant)
    frac = np.zeros(g.shape, np.float32)
    if min(g.shape):
        paint(frac, shape, g, sub, 1.0, z_invariant=z_invariant)
    return sl, frac


def supersampled_mask(shape: Sdf, grid: Grid, sub: tuple[int, int, int], lipschitz: float = 1.0) -> np.ndarray:
    """Inside-mask of ``shape`` on the grid refined ``sub`` (z, y, x) times, evaluated finely only near
    the surface; ``lipschitz`` bounds |gradient| of ``shape`` (a deformed shape exceeds 1)."""
    reach = lipschitz * _sample_reach(grid.spacing, sub) + 1e-4
    d = voxel_sdf(shape, grid, reach, lipschitz)
    fz, fy, fx = sub
    coarse = d < 0
    coarse[np.abs(d) < reach] = False
    fine = coarse.repeat(fz, 0).repeat(fy, 1).repeat(fx, 2)
    band = np.nonzero(np.abs(d) < reach)
    if band[0].size:
        inside = (shape(*_sub_samples(grid, band, sub)) < 0).reshape(-1, fz, fy, fx)
        view = fine.reshape(grid.shape[0], fz, grid.shape[1], fy, grid.shape[2], fx).transpose(0, 2, 4, 1, 3, 5)
        view[band] = inside
    return fine
