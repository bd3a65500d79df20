"""Quality check per segmented scan: the reasons a scan needs a second look (the report's ``qc`` column).

A lab that segments hundreds of scans reads again only the few this flags. Each rule is a plain threshold, listed with
its source in the report's ``meta`` (:meth:`QcRules.describe`); ``qc`` is ``ok`` when none fires, else the reasons.

- **LA volume** outside [:attr:`QcRules.la_ml_min`, :attr:`QcRules.la_ml_max`] ml. Healthy adults' maximal LA volume
  by CMR is 103 +- 30 ml (men) and 89 +- 21 ml (women) (Hudsmith et al., J Cardiovasc Magn Reson 2005;7:775-782);
  the lower bound, 25 ml, is the women's mean minus three SD; the upper bound, 250 ml, is 2.5 times the men's mean,
  left wide for the dilated atria of long-standing AF and because this bundle's LA includes the wall and the
  proximal pulmonary veins.
- **LA at a border**: the LA touches the image's border (it may be cut off) or, at inference, the border of the
  region stage 1 gave stage 2 (the LA reaches beyond what stage 1 found plus its margin), over at least
  :attr:`QcRules.border_min_mm2` mm^2, named by the anatomical side.
- **Removed components**: LA voxels outside the largest connected component (dropped by the post-processing at
  inference; for masks made elsewhere, the components the post-processing would drop) above
  :attr:`QcRules.removed_percent_max` % of the LA volume: the network saw LA in two places.
- **Scar burden** above :attr:`QcRules.scar_percent_max` % of the wall: the highest DECAAF fibrosis stage starts at
  30 % (Marrouche et al., JAMA 2014;311:498-506); 50 % is a project bound above it, where blood pool or
  neighbouring enhancement labelled as scar is more likely than fibrosis.
- **Adversarial confidence**: ``qc_score`` (:mod:`bundle.quantification.quality`, the joint discriminator's mean confidence in the
  LA) below :attr:`QcRules.qc_score_min`. Off by default (None): measured on the phantom validation, test and shifted
  scans, the score ranks worse segmentations *higher* (README, "Quality check"), so no threshold on it would pick the
  bad ones. A lab whose own measurement shows otherwise sets the threshold.
- **Stage 1 missed the LA** (``stage1`` ``searched``, :attr:`QcRules.flag_searched`): stage 1 found no plausible LA
  and stage 2 found one only by searching the whole field of view (:mod:`bundle.inference.two_stage`). A scan unlike
  anything stage 1 learnt: what stage 2 found there deserves a look.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import SimpleITK as sitk

from bundle.inference.localizer import largest_component

SIDES = {(0, 1): "left", (0, -1): "right", (1, 1): "posterior", (1, -1): "anterior", (2, 1): "superior",
         (2, -1): "inferior"}
"""Anatomical side of a world direction in ITK's LPS frame: (world axis, sign) -> side."""

OK = "ok"
"""``qc`` of a scan no rule flags."""


@dataclass(frozen=True)
class QcRules:
    """Thresholds of the quality check (module docstring: sources and reasons)."""

    la_ml_min: float = 25.0
    la_ml_max: float = 250.0
    border_min_mm2: float = 5.0
    removed_percent_max: float = 10.0
    scar_percent_max: float = 50.0
    qc_score_min: float | None = None
    flag_searched: bool = True

    def describe(self) -> dict:
        """The thresholds and their sources, for the report's ``meta``."""
        return {**asdict(self), "sources": {
            "la_ml": "Hudsmith et al., JCMR 2005: maximal LA volume 103 +- 30 ml (men), 89 +- 21 ml (women); "
                     "min = women's mean - 3 SD, max = 2.5 x men's mean (AF dilation, wall and veins included)",
            "scar_percent_max": "DECAAF (Marrouche et al., JAMA 2014): the highest fibrosis stage starts at 30 %; "
                                "50 % is a project bound above it",
            "border_min_mm2": "project bound: a few voxels of vein tip at a border are ignored",
            "removed_percent_max": "project bound",
            "qc_score_min": "off (None) by default: qc_score was measured to rank worse segmentations higher "
                            "(README, Quality check)",
            "flag_searched": "project rule: stage 1 missed the LA, found only by stage 2's search of the field of "
                             "view",
        }}

    def reasons(self, row: Mapping) -> list[str]:
        """The rules a report row (``la_ml``, ``scar_percent``, ``removed_ml``, ``borders``, ``qc_score``,
        ``stage1``) trips."""
        found = []
        la_ml = row.get("la_ml")
        if la_ml is not None and not self.la_ml_min <= la_ml <= self.la_ml_max:
            found.append(f"LA volume {la_ml:.0f} ml outside {self.la_ml_min:g}-{self.la_ml_max:g} ml")
        found += [f"LA touches the {border}" for border in row.get("borders") or []]
        removed = row.get("removed_ml")
        if removed and la_ml and 100.0 * removed / la_ml > self.removed_percent_max:
            found.append(f"{removed:.1f} ml of LA outside its largest component ({100 * removed / la_ml:.0f} % of "
                         f"the LA, over {self.removed_percent_max:g} %)")
        scar = row.get("scar_percent")
        if scar is not None and scar > self.scar_percent_max:
            found.append(f"scar {scar:.0f} % of the wall, over {self.scar_percent_max:g} %")
        score = row.get("qc_score")
        if self.qc_score_min is not None and score is not None and not math.isnan(score) and score < self.qc_score_min:
            found.append(f"low adversarial confidence (qc_score {score:.2f} < {self.qc_score_min:g})")
        if self.flag_searched and row.get("stage1") == "searched":
            found.append("stage 1 missed the LA (found by stage 2's search of the field of view)")
        return found

    def check(self, row: Mapping) -> str:
        """``qc`` of a report row: :data:`OK`, or its reasons joined by ``"; "``."""
        return "; ".join(self.reasons(row)) or OK


def side(image: sitk.Image, axis: int, high: bool) -> str:
    """Anatomical side (LPS) of the ``high`` (or low) face of ``image``'s voxel axis ``axis`` (0 = x, 1 = y, 2 = z)."""
    column = np.asarray(image.GetDirection(), float).reshape(3, 3)[:, axis] * (1 if high else -1)
    k = int(np.argmax(np.abs(column)))
    return SIDES[(k, 1 if column[k] > 0 else -1)]


def borders(la: np.ndarray, image: sitk.Image, roi: Mapping | None = None, min_mm2: float = 5.0) -> list[str]:
    """Borders a (z, y, x) LA mask on ``image``'s grid touches over at least ``min_mm2``: the image's faces
    (``image border (superior)``) and the faces of ``roi`` (voxel ``start``/``stop`` x, y, z of that grid) that lie
    inside the image (``stage-1 region border (left)``)."""
    la = np.asarray(la) > 0
    spacing = image.GetSpacing()
    size = la.shape[::-1]  # x, y, z
    found = []

    def touching(axis: int, index: int) -> bool:
        face = np.take(la, index, axis=2 - axis)
        other = [spacing[a] for a in range(3) if a != axis]
        return float(face.sum()) * other[0] * other[1] >= min_mm2

    for axis in range(3):
        for high, index in ((False, 0), (True, size[axis] - 1)):
            if touching(axis, index):
                found.append(f"image border ({side(image, axis, high)})")
        if roi is None:
            continue
        start, stop = int(roi["start"][axis]), int(roi["stop"][axis])
        for high, index, inside in ((False, start, start > 0), (True, stop - 1, stop < size[axis])):
            if inside and touching(axis, index):
                found.append(f"stage-1 region border ({side(image, axis, high)})")
    return found


def outside_largest_ml(la: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Volume (ml) of a (z, y, x) LA mask outside its largest 26-connected component: for masks made elsewhere, about
    what this bundle's post-processing would drop (it closes the LA in-plane first, which can join close parts)."""
    la = np.asarray(la) > 0
    outside = int(la.sum() - largest_component(la).sum())
    return outside * float(np.prod(spacing)) / 1000.0
