"""The phantom generator's families: the ways its scans differ, each a named choice drawn per patient or per scan.

- ``grid``: the acquisition grid of a real cohort (:data:`bundle.data.phantom.profiles.PROFILES`): ``utah``
  (0.625 x 0.625 x 2.5 mm, 44 slices), ``miccai2018`` (0.625 mm isotropic, 88 slices), ``siemens`` (0.7 x 0.7 x 2.0 mm).
- ``form``: how the scan is shipped: ``whole`` field of view; ``la_crop``, the in-plane box of the LA plus 10-20
  voxels on each side with every slice (the common preprocessed sets of the 2018 challenge); ``tight_crop``, the LA
  box plus a few millimetres in every direction (Utah's ROI crops, such as the CARMA crop).
- ``intensity``: the tissue-intensity model (:mod:`bundle.data.phantom.intensity`): ``lge`` (bright blood, nulled
  myocardium, as most LGE scans), ``dark`` (blood darker than its surroundings: a late or mistimed inversion), and
  ``random`` (every tissue class its own random mean, SynthSeg's domain randomisation; Billot et al., MedIA 2023).
- ``anatomy``: the pulmonary-vein pattern (:mod:`bundle.data.phantom.atrium`): ``standard`` (four ostia),
  ``left_common`` (one left trunk that divides outside the LA), ``right_middle`` (a third right vein).

A cohort draws each family from :data:`WEIGHTS` (anatomy per patient, the others per scan); a phantom block may
restrict a family to some members (``families: {grid: [utah], intensity: [lge, random]}``), which is how a
generalisation check holds whole families out of training and evaluates on them alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

WEIGHTS: dict[str, dict[str, float]] = {
    "grid": {"utah": 0.4, "miccai2018": 0.35, "siemens": 0.25},
    "form": {"whole": 0.6, "la_crop": 0.25, "tight_crop": 0.15},
    "intensity": {"lge": 0.6, "dark": 0.15, "random": 0.25},
    "anatomy": {"standard": 0.6, "left_common": 0.2, "right_middle": 0.2},
}
"""Each family's members and how often a scan (anatomy: a patient) draws them. The pulmonary-vein variants are
about as common in AF patients as here: a left common ostium in ~15-25 % and a right middle vein in ~20 % of
CT studies (Marom et al., Radiology 2004; Kato et al., Circulation 2003)."""

PER_PATIENT = ("anatomy",)
"""Families drawn once per patient (a pre- and a post-ablation scan share the anatomy)."""


def family_weights(select: Mapping[str, Sequence[str]] | None = None, grid: str | None = None) -> dict[str, dict]:
    """:data:`WEIGHTS` restricted to ``select`` (family -> allowed members), renormalised; ``grid`` fixes the grid.

    Raises:
        ValueError: an unknown family or member, or a family left without members.
    """
    weights = {family: dict(members) for family, members in WEIGHTS.items()}
    for family, members in (select or {}).items():
        if family not in WEIGHTS:
            raise ValueError(f"unknown phantom family {family!r}; known: {', '.join(WEIGHTS)}")
        members = [members] if isinstance(members, str) else list(members)
        unknown = [m for m in members if m not in WEIGHTS[family]]
        if unknown or not members:
            raise ValueError(f"phantom family {family!r}: unknown or no members {unknown or members}; known: "
                             f"{', '.join(WEIGHTS[family])}")
        weights[family] = {m: WEIGHTS[family][m] for m in members}
    if grid is not None:
        weights["grid"] = {grid: 1.0}
    return {family: {m: w / sum(members.values()) for m, w in members.items()} for family, members in weights.items()}


def draw(rng: np.random.Generator, members: Mapping[str, float]) -> str:
    """One member drawn with its weight."""
    names = list(members)
    return names[int(rng.choice(len(names), p=np.asarray([members[n] for n in names], float)))]
