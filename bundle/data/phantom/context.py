"""Thoracic context around the LA that makes LGE segmentation hard.

Other bright blood pools (LV, RV, RA, aorta, pulmonary artery), dark nulled ventricular
myocardium, an enhanced aortic wall and an oesophagus with a bright wall right behind the LA
(both as bright as scar), mediastinal and subcutaneous fat, lungs, spine and the body outline.
Positions are in mm relative to the LA body centre (LPS: +x left, +y posterior, +z superior),
jittered per patient; parts are painted in list order, later parts over earlier ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle.data.phantom import shapes
from bundle.data.phantom.atrium import Atrium

FAR = 1.0e4  # "unbounded" half-size of the columns along z, in mm


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


def _hollow(name, wall_tissue, inner_tissue, centre, radii, wall, rot=None) -> list[Part]:
    """A chamber: an ellipsoid of wall tissue with a cavity ``wall`` mm smaller."""
    inner = tuple(max(r - wall, 1.0) for r in radii)
    return [_ellipsoid(name + "_wall", wall_tissue, centre, radii, rot), _ellipsoid(name, inner_tissue, centre, inner, rot)]


def sample_context(rng: np.random.Generator, atrium: Atrium) -> tuple[list[Part], np.ndarray]:
    """Context parts for one patient and the centre of the chest (x, y) in mm."""
    j = lambda s: rng.normal(0.0, s)
    back = atrium.posterior_reach()
    body_c = np.array([-5.0 + j(5), -40.0 + j(6)])
    body_r = np.array([rng.uniform(145, 175), rng.uniform(100, 125)])
    fat = rng.uniform(8, 18)
    parts: list[Part] = [
        Part("body", shapes.elliptic_column(body_c, body_r), "subcutaneous_fat", z_invariant=True),
        Part("chest_wall", shapes.elliptic_column(body_c, body_r - fat), "muscle", z_invariant=True),
        Part("thorax", shapes.elliptic_column(body_c, body_r - fat - rng.uniform(10, 16)), "mediastinal_fat",
             z_invariant=True),
        _ellipsoid("right_lung", "lung", (-78 + j(4), -6 + j(4), 0), (rng.uniform(50, 60), 62, 140)),
        _ellipsoid("left_lung", "lung", (82 + j(4), -2 + j(4), 0), (rng.uniform(48, 58), 60, 140)),
        _ellipsoid("mediastinum", "mediastinal_fat", (12 + j(3), -38 + j(3), -12), (62, 48, 75)),
    ]
    lv_rot = shapes.rotation((j(8), 25 + j(8), -40 + j(8)))
    parts += _hollow("lv", "myocardium", "blood_lv", (40 + j(3), -56 + j(3), -16 + j(3)), (52, 38, 40), rng.uniform(8, 12), lv_rot)
    parts += _hollow("rv", "myocardium", "blood_rv", (-6 + j(3), -88 + j(3), -20 + j(3)), (48, 24, 36), 4.0)
    parts += _hollow("ra", "myocardium", "blood_ra", (-48 + j(3), -12 + j(3), -8 + j(3)), (24, 24, 30), 2.0)
    aw = rng.uniform(1.5, 2.5)
    parts += _vessel("ascending_aorta", "aortic_wall", "blood_aorta", (-12, -36, -25), (-6 + j(3), -30 + j(3), 70), rng.uniform(13, 16), aw)
    parts += _vessel("pulmonary_artery", "myocardium", "blood_rv", (8, -62, -8), (18 + j(3), -34 + j(3), 40), rng.uniform(11, 14), 1.5)
    # right behind the LA: oesophagus (enhanced wall) and descending aorta (enhanced wall)
    oes_r = rng.uniform(7, 10)
    oes = np.array([-6 + j(4), back + rng.uniform(1.0, 3.0) + oes_r])
    parts += _vessel("oesophagus", "oesophageal_wall", "oesophageal_lumen", (*oes, -FAR), (*oes, FAR), oes_r, rng.uniform(2.5, 4.0))
    ao_r = rng.uniform(10, 13)
    ao = np.array([24 + j(4), back + rng.uniform(2.0, 6.0) + ao_r])
    parts += _vessel("descending_aorta", "aortic_wall", "blood_aorta", (*ao, -FAR), (*ao, FAR), ao_r, aw)
    spine = np.array([j(3), max(ao[1], oes[1]) + rng.uniform(24, 32)])
    parts += [
        Part("vertebra", shapes.elliptic_column(spine, (rng.uniform(17, 21), rng.uniform(15, 18))), "bone",
             z_invariant=True),
        _tube("spinal_canal", "csf", (spine[0], spine[1] + 26, -FAR), (spine[0], spine[1] + 26, FAR), 8.0),
    ]
    return parts, body_c
