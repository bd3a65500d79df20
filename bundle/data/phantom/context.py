"""The thorax around the LA: the structures that make LGE segmentation of the LA hard.

The heart is packed as in a real chest, so the blood pools around the LA touch its wall: the right atrium (the
interatrial septum), the aortic root and ascending aorta in front of it, the left ventricle below and in front
(joined to the LA through the mitral valve: an annulus and a thin valve plane between two blood pools), the right
pulmonary artery over its roof, the coronary sinus along its floor, the descending aorta and the oesophagus
behind it; the unlabelled distal pulmonary veins run on into the lungs. Around them: the right ventricle, the
venae cavae, the pulmonary trunk, epicardial fat inside the pericardium, the main bronchi, lungs, spine, chest wall
and body outline. Each neighbour of the LA is placed along a direction from the LA centre so that it reaches
into the LA's outer surface by a random overlap (negative: a gap): the LA, painted last, covers the overlap, so the
neighbour's blood or wall abuts the LA wall with partial volume, at a distance that differs from patient to patient.

Positions are in mm relative to the LA body centre (LPS: +x left, +y posterior, +z superior); parts are painted in
list order, later parts over earlier ones. Every tissue name is a key of the intensity model
(:mod:`bundle.data.phantom.intensity`); every blood pool is called ``blood_*``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle.data.phantom import shapes
from bundle.data.phantom.atrium import Atrium

FAR = 1.0e4  # "unbounded" half-size of the columns along z, in mm

OVERLAP_MM = (-2.0, 5.0)
"""How far a touching vessel (coronary sinus, right pulmonary artery, descending aorta, oesophagus) reaches into the
LA's outer surface (negative: a gap of fat between them)."""
CHAMBER_OVERLAP_MM = (2.0, 14.0)
"""How far a chamber pressed against the LA (right atrium, aortic root, left ventricle) reaches into it: the LA,
painted over it, flattens the contact into a face 15-35 mm across, as the septa between real chambers."""


@dataclass
class Part:
    """A shape filled with one tissue; ``lo``/``hi`` bound it in world mm (None: whole scan); a ``z_invariant``
    shape (a column along z) is rasterised on one slice and broadcast."""

    name: str
    sdf: shapes.Sdf
    tissue: str
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    z_invariant: bool = False


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _ellipsoid(name, tissue, centre, radii, rot=None) -> Part:
    c, r = np.asarray(centre, float), float(max(radii))
    return Part(name, shapes.ellipsoid(c, radii, rot), tissue, c - r, c + r)


def _tube(name, tissue, p0, p1, radius) -> Part:
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    column = bool(p0[0] == p1[0] and p0[1] == p1[1] and min(p0[2], p1[2]) <= -FAR and max(p0[2], p1[2]) >= FAR)
    return Part(name, shapes.capsule(p0, p1, radius), tissue, np.minimum(p0, p1) - radius, np.maximum(p0, p1) + radius,
                z_invariant=column)


def _vessel(name, wall_tissue, lumen_tissue, p0, p1, radius, wall) -> list[Part]:
    """A vessel as an outer tube (its wall) with the lumen painted inside."""
    return [_tube(name + "_wall", wall_tissue, p0, p1, radius), _tube(name, lumen_tissue, p0, p1, radius - wall)]


def _path(name, wall_tissue, lumen_tissue, points, radius, wall) -> list[Part]:
    """A curved vessel through ``points``: its wall along the whole path first, then its lumen."""
    walls = [_tube(f"{name}_wall{i}", wall_tissue, a, b, radius) for i, (a, b) in enumerate(zip(points[:-1], points[1:]))]
    lumens = [_tube(f"{name}{i}", lumen_tissue, a, b, radius - wall) for i, (a, b) in enumerate(zip(points[:-1], points[1:]))]
    return walls + lumens


def _hollow(name, wall_tissue, inner_tissue, centre, radii, wall, rot=None) -> list[Part]:
    """A chamber: an ellipsoid of wall tissue with a cavity ``wall`` mm smaller."""
    inner = tuple(max(r - wall, 1.0) for r in radii)
    return [_ellipsoid(name + "_wall", wall_tissue, centre, radii, rot), _ellipsoid(name, inner_tissue, centre, inner, rot)]


def _touching(atrium: Atrium, direction, reach: float, overlap: float) -> np.ndarray:
    """Centre of a neighbour that reaches ``reach`` mm from its centre towards the LA, placed along ``direction``
    from the LA centre so that it reaches ``overlap`` mm into the LA's outer surface."""
    d = _unit(direction)
    return (atrium.support(d) + reach - overlap) * d


def _ellipsoid_reach(radii, rot, direction) -> float:
    """How far an ellipsoid's surface lies from its centre along ``direction``."""
    rot = np.eye(3) if rot is None else np.asarray(rot)
    return float(1.0 / np.linalg.norm((rot.T @ _unit(direction)) / np.asarray(radii)))


def _mitral(rng: np.random.Generator, atrium: Atrium, lv_centre: np.ndarray) -> list[Part]:
    """The LV inflow: blood from the LV cavity to the LA floor through the mitral annulus (a fibrous ring) and a thin
    valve plane just outside the LA (its contrast, drawn per scan, may make it all but invisible)."""
    d = _unit(lv_centre)  # from the LA centre towards the LV
    entry = atrium.support(d) * d  # the LA's outer surface towards the LV
    r = rng.uniform(11.0, 15.0)
    depth = rng.uniform(4.0, 7.0)
    ring = rng.uniform(2.0, 4.0)
    valve = rng.uniform(0.8, 1.6)
    return [
        _tube("mitral_annulus", "mitral_annulus", entry + 0.5 * depth * d, entry + 1.5 * depth * d, r + ring),
        _tube("lv_inflow", "blood_lv", entry - 2.0 * d, lv_centre, r),
        Part("mitral_valve", shapes.cylinder(entry + 0.2 * d, entry + (0.2 + valve) * d, r + ring),
             "mitral_valve", entry - (r + ring + 2.0), entry + (r + ring + 2.0)),
    ]


def sample_context(rng: np.random.Generator, atrium: Atrium) -> tuple[list[Part], np.ndarray]:
    """Context parts for one patient and the centre of the chest (x, y) in mm."""
    j = lambda s: rng.normal(0.0, s)  # noqa: E731
    lap = lambda: rng.uniform(*OVERLAP_MM)  # noqa: E731
    top = atrium.support((0.0, 0.0, 1.0))
    bottom = atrium.support((0.0, 0.0, -1.0))
    back = atrium.posterior_reach()
    body_c = np.array([-5.0 + j(5), -45.0 + j(6)])
    body_r = np.array([rng.uniform(145, 175), rng.uniform(105, 125)])
    fat = rng.uniform(8, 18)
    parts: list[Part] = [
        Part("body", shapes.elliptic_column(body_c, body_r), "subcutaneous_fat", z_invariant=True),
        Part("chest_wall", shapes.elliptic_column(body_c, body_r - fat), "muscle", z_invariant=True),
        Part("thorax", shapes.elliptic_column(body_c, body_r - fat - rng.uniform(10, 16)), "mediastinal_fat",
             z_invariant=True),
        _ellipsoid("right_lung", "lung", (-85 + j(4), 0 + j(4), 0), (rng.uniform(50, 60), 70, 150)),
        _ellipsoid("left_lung", "lung", (88 + j(4), 4 + j(4), 0), (rng.uniform(48, 58), 68, 150)),
        _ellipsoid("mediastinum", "mediastinal_fat", (12 + j(3), -38 + j(3), -12), (60, 55, 80)),
    ]
    # the main bronchi under the carina, above and behind the LA roof (air, thin wall)
    carina = np.array([j(4), 8 + j(4), top + rng.uniform(18, 30)])
    for side, end in (("left", (48 + j(4), 18 + j(4), top + rng.uniform(0, 10))),
                      ("right", (-42 + j(4), 12 + j(4), top + rng.uniform(6, 16)))):
        parts += _vessel(f"{side}_bronchus", "muscle", "airway", carina, end, rng.uniform(6, 8), 1.5)
    # right ventricle (front) and left ventricle (front, below, left), the LV joined to the LA by the mitral valve
    rv_r = (rng.uniform(42, 52), rng.uniform(20, 28), rng.uniform(32, 40))
    parts += _hollow("rv", "myocardium", "blood_rv", (-4 + j(4), -92 + j(4), -24 + j(4)), rv_r, rng.uniform(3, 5))
    lv_rot = shapes.rotation((j(8), 25 + j(8), -40 + j(8)))
    lv_r = np.array([rng.uniform(48, 56), rng.uniform(34, 40), rng.uniform(36, 44)])
    lv_dir = _unit((0.45 + j(0.1), -0.7 + j(0.1), -0.6 + j(0.1)))
    lv_c = _touching(atrium, lv_dir, _ellipsoid_reach(lv_r, lv_rot, -lv_dir), rng.uniform(*CHAMBER_OVERLAP_MM))
    parts += _hollow("lv", "myocardium", "blood_lv", lv_c, lv_r, rng.uniform(8, 12), lv_rot)
    parts += _mitral(rng, atrium, lv_c)
    # right atrium (right, in front) with the venae cavae: the interatrial septum is the overlap
    ra_r = np.array([rng.uniform(22, 30), rng.uniform(20, 28), rng.uniform(25, 34)])
    ra_dir = _unit((-1.0, -0.45 + j(0.15), -0.1 + j(0.1)))
    ra_c = _touching(atrium, ra_dir, _ellipsoid_reach(ra_r, None, -ra_dir), rng.uniform(*CHAMBER_OVERLAP_MM))
    parts += _hollow("ra", "myocardium", "blood_ra", ra_c, ra_r, rng.uniform(1.5, 3.0))
    parts.append(_tube("svc", "blood_vc", ra_c + (j(3), 4 + j(3), 0.6 * ra_r[2]), (ra_c[0] + j(4), ra_c[1] + 10 + j(4), FAR),
                       rng.uniform(9, 12)))
    parts.append(_tube("ivc", "blood_vc", ra_c - (j(3), -4 + j(3), 0.6 * ra_r[2]), (ra_c[0] + j(4), ra_c[1] + 8 + j(4), -FAR),
                       rng.uniform(11, 14)))
    # aortic root in front of the LA, ascending aorta, arch over the right pulmonary artery, descending aorta behind
    aw = rng.uniform(1.5, 2.5)
    root_r = rng.uniform(14, 18)
    root = _touching(atrium, (-0.3 + j(0.1), -1.0, 0.2 + j(0.1)), root_r, rng.uniform(*CHAMBER_OVERLAP_MM))
    arch_z = top + rng.uniform(30, 50)
    ascending = np.array([root[0] + 4 + j(4), root[1] + 8 + j(4), arch_z])
    da_r = rng.uniform(10, 13)
    da = np.array([22 + j(4), back + rng.uniform(-3.0, 4.0) + da_r])
    arch_top = np.array([0.5 * (ascending[0] + da[0]), 0.5 * (ascending[1] + da[1]), arch_z + rng.uniform(8, 15)])
    parts += _path("aorta", "aortic_wall", "blood_aorta", [root, ascending, arch_top, (da[0], da[1], arch_z)],
                   rng.uniform(12, 16), aw)
    parts += _vessel("aortic_root", "aortic_wall", "blood_aorta", root, root + (0, 0, 6), root_r, aw)
    parts += _vessel("descending_aorta", "aortic_wall", "blood_aorta", (*da, -FAR), (*da, arch_z), da_r, aw)
    # pulmonary trunk from the RV outflow, dividing over the LA roof; the right PA crosses the roof
    bifurcation = np.array([8 + j(4), -18 + j(4), top + rng.uniform(8, 18)])
    outflow = np.array([root[0] + 28 + j(4), root[1] - 14 + j(4), root[2] + j(4)])
    parts += _path("pa_trunk", "myocardium", "blood_pa", [outflow, bifurcation], rng.uniform(12, 15), 1.5)
    rpa_r = rng.uniform(9, 12)
    rpa_z = top + rpa_r - rng.uniform(*OVERLAP_MM)
    parts += _path("right_pa", "myocardium", "blood_pa", [bifurcation, (-20 + j(4), 2 + j(4), rpa_z),
                                                          (-65 + j(4), 8 + j(4), rpa_z + j(3))], rpa_r, 1.0)
    parts += _path("left_pa", "myocardium", "blood_pa", [bifurcation, (45 + j(4), 12 + j(4), top + rng.uniform(10, 20))],
                   rng.uniform(9, 12), 1.0)
    # coronary sinus in the groove along the posterior LA floor, into the RA
    cs_r = rng.uniform(3.0, 6.0)
    cs_z = -bottom - cs_r + rng.uniform(*OVERLAP_MM)
    parts.append(_tube("coronary_sinus", "blood_cs", (35 + j(4), 6 + j(4), cs_z + j(2)), (-25 + j(4), -6 + j(4), cs_z + j(2)),
                       cs_r))
    # right behind the LA: the oesophagus (enhanced wall, air or fluid inside)
    oes_r = rng.uniform(7, 10)
    oes = np.array([-6 + j(4), back + rng.uniform(-2.0, 3.0) + oes_r])
    parts += _vessel("oesophagus", "oesophageal_wall", "oesophageal_lumen", (*oes, -FAR), (*oes, FAR), oes_r,
                     rng.uniform(2.5, 4.0))
    spine = np.array([j(3), max(da[1], oes[1]) + rng.uniform(24, 32)])
    parts += [
        Part("vertebra", shapes.elliptic_column(spine, (rng.uniform(17, 21), rng.uniform(15, 18))), "bone",
             z_invariant=True),
        _tube("spinal_canal", "csf", (spine[0], spine[1] + 26, -FAR), (spine[0], spine[1] + 26, FAR), 8.0),
    ]
    # the pulmonary veins beyond the labelled LA, into the lungs (the same blood, not LA)
    parts += [_tube(f"distal_vein{i}", "blood_pv", a, b, r) for i, (a, b, r) in enumerate(atrium.distal)]
    return parts, body_c
