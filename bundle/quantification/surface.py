"""The scar on the LA surface: an LA mesh in world coordinates with the scar and the LGE intensity projected onto it.

Clinicians read atrial scar on the LA surface, as CemrgApp and the Cardiac MRI Toolkit (3D Slicer) show it: which
pulmonary-vein antra are encircled, where the gaps are. :func:`surface_map` builds that map from a label map:

1. **Mesh**: marching cubes (scikit-image) at the 0.5 level of the LA mask, blurred by :data:`SIGMA_MM` so thick
   slices do not leave terraces, on the scan's own grid, mapped to world
   millimetres with the scan's origin, spacing and direction (ITK's LPS frame, the frame 3D Slicer assumes for a mesh
   file without a ``SPACE`` comment), then Taubin's lambda/mu smoothing (trimesh), which removes the voxel
   staircase without the shrinking of plain Laplacian smoothing (Taubin, SIGGRAPH 1995).
2. **Projection along the wall normal**: for every vertex, the labels at points from :data:`SEGMENT_MM` [0] (outside)
   to [1] (inside) mm along the inward normal, every :data:`STEP_MM` mm (nearest voxel), i.e. through the
   2.5 mm wall of the label protocol (:mod:`bundle.data.wall`) with 1 mm of slack on both sides for the smoothing.
   ``scar_share`` is the share of the segment's wall samples that are scar, and a vertex is scar when that share is
   at least a half (**majority**). The maximum along the normal (CemrgApp's default projection) marks a vertex as
   scar when a single sample of its segment is, so scar bleeds onto neighbouring, healthy surface wherever a
   segment grazes it obliquely (CemrgApp issue #43, which added a mode-of-voxels projection for that reason); the
   majority keeps a vertex's label to the wall right under it. The surface scar % is the area share of the scar
   vertices (each vertex holding a third of its triangles' area).
3. **Intensity**: the image intensity ratio (IIR: LGE intensity / mean intensity of the LA blood pool, i.e. the LA
   minus its wall) of the voxels under the same wall samples: ``iir_max`` and ``iir_mean`` per vertex. Voxel values,
   not interpolated ones, so a vertex's IIR is that of its wall voxels (as the voxel-wise IIR > 1.2 scar rule reads it)
   and never a blend with the blood or fat beside the wall.

Files (:func:`write_vtk`, :func:`write_ply`) carry ``SPACE=LPS`` in their header, as 3D Slicer writes and reads it, so
the mesh sits on the image in Slicer and ParaView. :func:`render_views` draws it headless (Matplotlib, Agg) from the
anterior, posterior, left and right.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import trimesh
from scipy import ndimage
from skimage.measure import marching_cubes

from bundle.atomic import atomic_path
from bundle.data.wall import WALL_THICKNESS_MM

logger = logging.getLogger(__name__)

SEGMENT_MM = (-1.0, WALL_THICKNESS_MM + 1.0)
"""Depths (mm, positive inwards) between which each vertex's normal segment is sampled: the wall plus 1 mm of slack
outside and inside, for the sub-voxel shift of the smoothed surface."""

STEP_MM = 0.25
"""Distance between samples along a normal segment."""

SCAR_MAJORITY = 0.5
"""A vertex is scar when at least this share of its segment's wall samples is scar."""

SIGMA_MM = 1.0
"""Gaussian smoothing of the LA mask before marching cubes (mm; along an axis of thicker voxels, half a voxel): the
0.5 level of the blurred mask interpolates between the slices of a thick-slice scan instead of stepping at each one,
as the 0.5 level of the binary mask does (2.5 mm terraces on a 0.625 x 0.625 x 2.5 mm scan)."""

TAUBIN_ITERATIONS = 20
TAUBIN_LAMBDA, TAUBIN_MU = 0.5, 0.52
"""Taubin smoothing: ``iterations`` pairs of a shrinking (lambda) and an inflating (mu) Laplacian step; 1/lambda - 1/mu
= 0.077 lies in the pass band trimesh asks for (0 < k < 0.1), so the mesh keeps its volume."""

COORDINATE_SYSTEM = "LPS"
"""World frame of the mesh files: ITK's (and DICOM's) patient frame, written as ``SPACE=LPS`` for 3D Slicer."""

VIEWS = {"anterior": -90.0, "posterior": 90.0, "left": 0.0, "right": 180.0}
"""Matplotlib azimuths of the four standard views in the LPS frame: the camera sits anterior (-y), posterior (+y),
on the patient's left (+x) and right (-x), looking at the LA with superior (+z) up."""

SCAR_COLOUR = (0.84, 0.10, 0.11)
WALL_COLOUR = (0.87, 0.80, 0.70)


@dataclass
class SurfaceMap:
    """An LA surface mesh in world millimetres (LPS) with per-vertex scar and intensity.

    ``faces`` wind counter-clockwise seen from outside, so ``normals`` point outwards. ``iir_max``/``iir_mean`` are
    NaN where no image was given or no wall sample lay under a vertex.
    """

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    scar: np.ndarray
    scar_share: np.ndarray
    iir_max: np.ndarray
    iir_mean: np.ndarray
    vertex_area: np.ndarray

    @property
    def area_mm2(self) -> float:
        """Area of the LA surface (mm^2)."""
        return float(self.vertex_area.sum())

    @property
    def scar_percent(self) -> float:
        """Scar % of the LA surface area (the scar vertices' share)."""
        total = self.area_mm2
        return 100.0 * float(self.vertex_area[self.scar].sum()) / total if total > 0 else 0.0

    def point_arrays(self) -> dict[str, np.ndarray]:
        """The per-vertex arrays the mesh files carry."""
        return {"scar": self.scar.astype(np.uint8), "scar_share": self.scar_share.astype(np.float32),
                "iir_max": self.iir_max.astype(np.float32), "iir_mean": self.iir_mean.astype(np.float32)}


def index_to_world(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(A, o) with world = o + A @ (x, y, z) continuous index, for ``image``'s direction, spacing and origin."""
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    return direction @ np.diag(image.GetSpacing()), np.asarray(image.GetOrigin(), float)


def la_mesh(la: np.ndarray, image: sitk.Image, iterations: int = TAUBIN_ITERATIONS,
            sigma_mm: float = SIGMA_MM) -> trimesh.Trimesh:
    """The smoothed surface of a (z, y, x) LA mask on ``image``'s grid, in world millimetres, normals outward.

    Raises:
        ValueError: the mask is empty.
    """
    la = np.asarray(la) > 0
    boxes = ndimage.find_objects(la.astype(np.uint8))
    if not boxes:
        raise ValueError("the LA mask is empty: no surface")
    box = boxes[0]
    sigma = [max(sigma_mm, 0.5 * s) / s for s in image.GetSpacing()[::-1]] if sigma_mm > 0 else [0.0] * 3
    pad = int(np.ceil(3.0 * max(sigma))) + 1  # background all round, wider than the blur: every surface closes
    padded = np.pad(la[box], pad).astype(np.float32)
    if sigma_mm > 0:  # outside the scan is background (constant 0), never a mirror of an LA cut by the border
        padded = ndimage.gaussian_filter(padded, sigma, mode="constant", truncate=3.0)
    verts, faces, _, _ = marching_cubes(padded, 0.5)
    start = np.array([s.start - pad for s in box], float)
    matrix, origin = index_to_world(image)
    world = (verts + start)[:, ::-1] @ matrix.T + origin
    mesh = trimesh.Trimesh(world, faces, process=True)
    if iterations > 0:
        trimesh.smoothing.filter_taubin(mesh, lamb=TAUBIN_LAMBDA, nu=TAUBIN_MU, iterations=iterations)
    if mesh.volume < 0:  # an axis flip or permutation of the index-to-world map reverses the winding
        mesh.invert()
    return mesh


def _sample_indices(points: np.ndarray, image: sitk.Image) -> np.ndarray:
    """World points (..., 3) as continuous (z, y, x) array indices of ``image``."""
    matrix, origin = index_to_world(image)
    return ((points - origin) @ np.linalg.inv(matrix).T)[..., ::-1]


def _nearest(volume: np.ndarray, zyx: np.ndarray) -> np.ndarray:
    """``volume`` at the nearest voxel of each continuous index (..., 3); 0 outside the volume."""
    idx = np.rint(zyx).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.array(volume.shape)), axis=-1)
    out = np.zeros(idx.shape[:-1], volume.dtype)
    out[inside] = volume[tuple(idx[inside].T)]
    return out


def blood_pool_mean(image_array: np.ndarray, la: np.ndarray, wall: np.ndarray) -> float:
    """Mean intensity of the LA blood pool (LA minus its wall); NaN when the LA has no cavity."""
    pool = la & ~wall
    return float(image_array[pool].mean()) if pool.any() else float("nan")


def surface_map(label: np.ndarray, reference: sitk.Image, wall: np.ndarray, image: np.ndarray | None = None,
                iterations: int = TAUBIN_ITERATIONS) -> SurfaceMap:
    """The LA surface of ``label`` (0/1/2, (z, y, x) on ``reference``'s grid) with scar and IIR projected onto it.

    Args:
        label: the label map (LA = label > 0, scar = label == 2).
        reference: the image whose grid the label lies on (origin, spacing, direction).
        wall: the LA wall on that grid (e.g. :func:`bundle.quantification.burden.axial_wall`); scar counts as wall.
        image: the LGE intensities on that grid, for the IIR (None: ``iir_*`` are NaN).
        iterations: Taubin smoothing iterations.
    """
    label = np.asarray(label)
    la, scar = label > 0, label == 2
    wall = (np.asarray(wall) > 0) | scar
    mesh = la_mesh(la, reference, iterations)
    vertices = np.asarray(mesh.vertices, float)
    normals = np.asarray(mesh.vertex_normals, float)
    depths = np.arange(SEGMENT_MM[0], SEGMENT_MM[1] + 1e-9, STEP_MM)
    points = vertices[:, None, :] - normals[:, None, :] * depths[None, :, None]
    zyx = _sample_indices(points, reference)
    in_wall = _nearest(wall, zyx)
    n_wall = in_wall.sum(axis=1)
    n_scar = (_nearest(scar, zyx) & in_wall).sum(axis=1)
    share = np.divide(n_scar, n_wall, out=np.zeros(len(vertices)), where=n_wall > 0)
    iir_max = np.full(len(vertices), np.nan)
    iir_mean = np.full(len(vertices), np.nan)
    intensities = None if image is None else np.asarray(image, np.float32)
    pool = float("nan") if intensities is None else blood_pool_mean(intensities, la, wall)
    if intensities is not None and pool > 0:  # NaN (no blood pool) compares False: no IIR
        ratio = np.where(in_wall, _nearest(intensities, zyx) / pool, np.nan)
        some = n_wall > 0
        iir_max[some] = np.nanmax(ratio[some], axis=1)
        iir_mean[some] = np.nanmean(ratio[some], axis=1)
    vertex_area = np.zeros(len(vertices))
    np.add.at(vertex_area, np.asarray(mesh.faces).ravel(), np.repeat(np.asarray(mesh.area_faces) / 3.0, 3))
    return SurfaceMap(vertices, np.asarray(mesh.faces, np.int64), normals, share >= SCAR_MAJORITY, share, iir_max,
                      iir_mean, vertex_area)


def write_vtk(surface: SurfaceMap, path: str | Path, title: str = "LA surface") -> Path:
    """Write a legacy binary VTK PolyData file (3D Slicer, ParaView) with the point arrays and outward normals.

    The title line carries ``SPACE=LPS``, the comment 3D Slicer writes and reads to place a mesh in its world frame.
    """
    n, m = len(surface.vertices), len(surface.faces)
    title = " ".join(title.split())[:200]
    parts = [f"# vtk DataFile Version 3.0\n{title} SPACE={COORDINATE_SYSTEM}\nBINARY\nDATASET POLYDATA\n"
             f"POINTS {n} float\n".encode(), surface.vertices.astype(">f4").tobytes(),
             f"\nPOLYGONS {m} {4 * m}\n".encode(),
             np.hstack([np.full((m, 1), 3), surface.faces]).astype(">i4").tobytes(), f"\nPOINT_DATA {n}\n".encode()]
    for name, values in surface.point_arrays().items():
        kind = "unsigned_char" if values.dtype == np.uint8 else "float"
        parts += [f"SCALARS {name} {kind} 1\nLOOKUP_TABLE default\n".encode(),
                  values.astype(np.uint8 if kind == "unsigned_char" else ">f4").tobytes(), b"\n"]
    parts += [b"NORMALS Normals float\n", surface.normals.astype(">f4").tobytes(), b"\n"]
    path = Path(path)
    with atomic_path(path, suffix=".vtk") as tmp:
        Path(tmp).write_bytes(b"".join(parts))
    return path


def vertex_colours(surface: SurfaceMap) -> np.ndarray:
    """(n, 4) uint8 RGBA: scar vertices in :data:`SCAR_COLOUR`, the rest in :data:`WALL_COLOUR`."""
    colours = np.where(surface.scar[:, None], SCAR_COLOUR, WALL_COLOUR)
    return np.hstack([np.round(255 * colours), np.full((len(colours), 1), 255)]).astype(np.uint8)


def write_ply(surface: SurfaceMap, path: str | Path) -> Path:
    """Write a binary PLY with vertex colours (scar red) and the point arrays as extra vertex properties (trimesh);
    a ``comment SPACE=LPS`` header line places it in 3D Slicer."""
    mesh = trimesh.Trimesh(surface.vertices, surface.faces, vertex_colors=vertex_colours(surface), process=False)
    for name, values in surface.point_arrays().items():
        mesh.vertex_attributes[name] = values.astype(np.float32)
    data = mesh.export(file_type="ply")
    head, sep, rest = data.partition(b"\n")  # "ply" first, then the format line; the comment goes after it
    fmt, sep2, rest = rest.partition(b"\n")
    data = head + sep + fmt + sep2 + f"comment SPACE={COORDINATE_SYSTEM}\n".encode() + rest
    path = Path(path)
    with atomic_path(path, suffix=".ply") as tmp:
        Path(tmp).write_bytes(data)
    return path


def render_views(surface: SurfaceMap, path: str | Path, title: str, views: Sequence[str] = tuple(VIEWS),
                 size_px: int = 900) -> Path:
    """PNG of the surface seen from each of ``views`` (:data:`VIEWS`), scar in red, Lambert-shaded, orthographic,
    headless (Matplotlib's Agg), with ``title`` above the panels."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg, leaving pyplot's backend alone
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    triangles = surface.vertices[surface.faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    face_scar = surface.scar[surface.faces].mean(axis=1) >= 0.5
    base = np.where(face_scar[:, None], SCAR_COLOUR, WALL_COLOUR)
    centre = 0.5 * (surface.vertices.min(axis=0) + surface.vertices.max(axis=0))
    half = 0.5 * float(np.max(surface.vertices.max(axis=0) - surface.vertices.min(axis=0))) * 1.02
    cols = min(len(views), 2)
    rows = -(-len(views) // cols)
    fig = Figure(figsize=(size_px / 100, size_px / 100 * rows / cols + 0.4), dpi=100)
    for i, view in enumerate(views):
        azimuth = np.radians(VIEWS[view])
        eye = np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
        facing = normals @ eye
        front = facing > 0  # back faces are hidden by a closed surface: culled
        shade = 0.35 + 0.65 * facing[front, None]
        ax = fig.add_subplot(rows, cols, i + 1, projection="3d")
        # no antialiasing: its half-transparent triangle edges would let the hidden surface show through the seams
        ax.add_collection3d(Poly3DCollection(triangles[front], facecolors=np.clip(base[front] * shade, 0, 1),
                                             edgecolors="none", antialiased=False))
        ax.set_proj_type("ortho")
        ax.view_init(elev=0.0, azim=VIEWS[view])
        for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
            setter(c - half, c + half)
        ax.set_box_aspect((1, 1, 1), zoom=1.35)
        ax.set_axis_off()
        ax.set_title(view, fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=0.92, wspace=0, hspace=0.05)
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
