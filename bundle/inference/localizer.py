"""Stage 1: find the LA in a whole scan on a coarse grid and return the region stage 2 segments.

The preprocessed scan (plan spacing in-plane, z-scored) is averaged down to the plan's localiser spacing (area
averaging, so noise does not alias) and the 3D :class:`~bundle.networks.LocalizerNet` gives an LA probability per
coarse voxel. Every connected component of ``p >`` :data:`THRESHOLD` is a :class:`Candidate`, measured (volume,
extents along x, y, z, probability mass, mean and peak probability, the scan borders it touches) and checked
against a plausible adult LA (:class:`LaRange`: the plan's LAs and the literature, widened); the plausible one with
the highest probability mass is the LA (:data:`OK`). A localiser that also fires on the aorta or another blood pool
no longer hands stage 2 the larger of the two. When no component is plausible the search widens
(:data:`WIDENED`): components split apart (the LA body and a vein) are also tried merged, then the lower thresholds
:data:`WIDER_THRESHOLDS`; only when nothing plausible exists is the scan :data:`NO_LA`, with what was found and why
it was rejected. The chosen component's box plus the plan's margin, on the fine grid, is the ROI
(:mod:`bundle.preprocessing.roi`). A scan already cropped around the LA skips the network (:data:`CROP`).
Stage 1's further guesses (:func:`next_guesses`: the other plausible candidates, then pieces of an LA too small to
pass) go with its answer: stage 2 checks them in turn when it finds no LA in the chosen ROI, or when stage 1 found
none (:meth:`bundle.inference.two_stage.TwoStageInferer.segment`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from bundle.planning.planner import coarse_shape, is_crop
from bundle.preprocessing.roi import Roi, roi_from_coarse_mask

logger = logging.getLogger(__name__)

__all__ = ["CROP", "NO_LA", "OK", "SEARCHED", "WIDENED", "Candidate", "LaRange", "Localizer", "Location",
           "coarse_shape", "find_la", "judge", "la_candidates", "largest_component", "to_coarse"]

THRESHOLD = 0.5
"""Stage-1 probability above which a coarse voxel is LA."""

WIDER_THRESHOLDS = (0.3, 0.15)
"""Lower thresholds tried in turn when no component above :data:`THRESHOLD` is plausible: a localiser unsure of an
LA of unusual contrast or shape (a scan unlike its training data) still ranks it well above the background."""

MERGE_GAP_MM = 10.0
"""Components of one threshold at most this far apart (mm) are also tried as one candidate: a pulmonary vein or the
appendage's neck, thinner than a coarse voxel, falls under the threshold and cuts the LA into a body and a vein.
10 mm is the plan's smallest ROI margin (``ROI_MIN_MARGIN_MM``): a gap the ROI would bridge anyway. Rounded down to
whole coarse voxels, at least one on each side (9 mm on the 4.48 mm grid of plans/phantom.json)."""

OK, CROP, NO_LA = "ok", "crop", "no_la"
"""How a scan was located: the LA was found, the scan is a crop (stage 1 skipped), or no LA was found."""

WIDENED = "widened"
"""The LA was found by the wider search (components merged, or a lower threshold): no component above
:data:`THRESHOLD` was plausible."""

SEARCHED = "searched"
"""Stage 1 missed the LA (no plausible LA in its choice or its guesses): stage 2 found it by searching the whole field
of view (:meth:`bundle.inference.two_stage.TwoStageInferer.search_scan`)."""

LA_ML_LITERATURE = (25.0, 250.0)
"""Adult LA volume (ml), wall and proximal veins included. Maximal LA volume by CMR is 103 +- 30 ml (men) and
89 +- 21 ml (women) (Hudsmith et al., J Cardiovasc Magn Reson 2005;7:775-782): 25 ml is the women's mean minus
three SD, 250 ml 2.5 times the men's mean (dilated atria of long-standing AF, wall, veins); the same bounds as the
quality check's (:class:`bundle.quantification.qc.QcRules`)."""

LA_DIAMETER_MM_LITERATURE = (27.0, 52.0)
"""Adult LA antero-posterior diameter (mm): the lowest normal value (women, 27 mm) and the start of severe
enlargement (men, 52 mm) in the ASE/EAE chamber quantification recommendations (Lang et al., J Am Soc
Echocardiogr 2005;18:1440-1463). A component's shortest extent is at least the LA's smallest diameter."""

LA_LONGEST_MM_LITERATURE = 2.0 * LA_DIAMETER_MM_LITERATURE[1]
"""Longest extent (mm) of an adult LA label: the body of a severely enlarged LA (52 mm) with the proximal pulmonary
veins and the appendage, which leave it on opposite sides, taken as twice that diameter (a project bound derived
from :data:`LA_DIAMETER_MM_LITERATURE`; plans/phantom.json's longest LA is 96 mm)."""

LA_ELONGATION_MAX = 3.0
"""Longest over shortest extent of a plausible LA (project bound). LA labels with their veins and appendage reach
1.75 in plans/phantom.json and 2.2 in the ``tinyfov`` phantoms; a localiser's coarse component of such an LA is
rounder or longer by a voxel here and there, or runs into a neighbour (2.6, 103 x 41 x 40 mm, for a 1.9 LA of
88 x 55 x 45 mm, measured with the localiser trained in tests/inference/test_localizer.py). A descending aorta, 20-26 mm across in the bundle's phantoms
(bundle/data/phantom/context.py), through a 110 mm slab is 4.2-5.5 (3.6-4.5 on a 4.5 mm grid, which widens it by
about a voxel)."""

VOLUME_FACTOR = 1.5
"""The plausible volume range is that of the plan's LAs and :data:`LA_ML_LITERATURE` together, divided (lower bound)
and multiplied (upper bound) by this: patients beyond the plan's cohort, and the coarse grid (a coarse voxel is LA
when a quarter of it is, and a lower threshold adds up to a layer of 4.5 mm voxels: half to one such layer around a
100 ml sphere adds 25 to 55 %)."""

EXTENT_FACTOR = 1.5
"""The shortest extent's lower bound (the plan's and :data:`LA_DIAMETER_MM_LITERATURE`'s smallest) is divided by
this, the longest extent's upper bound (the plan's and :data:`LA_LONGEST_MM_LITERATURE`'s largest) multiplied."""

ELONGATION_FACTOR = 1.25
"""The plan's most elongated LA times this, when that exceeds :data:`LA_ELONGATION_MAX`, is the elongation bound
(a ratio of two extents: widening each by :data:`EXTENT_FACTOR` would let a 2 : 1 LA pass as 4.5 : 1, an aorta)."""

REPORTED_CANDIDATES = 2
"""Rejected candidates (those of the highest probability mass) named per threshold in a ``detail`` sentence."""

CONNECTIVITY = np.ones((3, 3, 3), bool)
"""26-connectivity of the coarse grid's components."""

AXES = "zyx"
"""Array axis names, in array order."""


def to_coarse(volume: torch.Tensor | np.ndarray, spacing_xyz: Sequence[float], target_xyz: Sequence[float]) -> torch.Tensor:
    """A (z, y, x) volume (or mask, as float) averaged onto the coarse grid: (1, 1, z', y', x') float32.

    Area averaging (``F.interpolate(mode="area")``, adaptive average pooling) is the exact mean of the fine voxels
    under each coarse one, so neither noise nor thin structures alias.
    """
    x = torch.as_tensor(volume, dtype=torch.float32)
    x = x.reshape(1, 1, *x.shape[-3:])
    return F.interpolate(x, size=coarse_shape(x.shape[-3:], spacing_xyz, target_xyz), mode="area")


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean 3D array (empty stays empty)."""
    labels, n = ndimage.label(mask, structure=CONNECTIVITY)
    if n <= 1:
        return labels > 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1


def side_name(axis: int, high: bool) -> str:
    """A box side in array terms: ``"x-"`` is the side at index 0 of x, ``"z+"`` the last slice's."""
    return f"{AXES[axis]}{'+' if high else '-'}"


@dataclass(frozen=True)
class Candidate:
    """One connected component of ``p > threshold`` on the coarse grid (or ``members`` of them merged).

    ``ml``: its volume (coarse voxels x their volume); ``mass_ml``: its probability mass (the sum of ``p``, in ml);
    ``extent_mm``: its box's extent along x, y, z; ``border``: the scan sides it touches (:func:`side_name`).
    """

    threshold: float
    members: int
    ml: float
    mass_ml: float
    extent_mm: tuple[float, float, float]
    mean_probability: float
    max_probability: float
    border: tuple[str, ...]
    labels: np.ndarray = field(repr=False, compare=False)
    ids: tuple[int, ...] = field(repr=False, compare=False)

    @property
    def mask(self) -> np.ndarray:
        """The candidate's voxels on the coarse grid."""
        return np.isin(self.labels, self.ids)

    @property
    def elongation(self) -> float:
        """Longest over shortest extent."""
        return max(self.extent_mm) / min(self.extent_mm)

    @property
    def at_in_plane_border(self) -> bool:
        """Whether it touches the scan's border along x or y (a whole scan's LA lies well inside)."""
        return any(side[0] in "xy" for side in self.border)

    def describe(self) -> str:
        """Its measures in a few words."""
        x, y, z = self.extent_mm
        text = (f"{self.ml:.0f} ml, {x:.0f} x {y:.0f} x {z:.0f} mm (x, y, z), p mean {self.mean_probability:.2f} "
                f"max {self.max_probability:.2f}")
        if self.members > 1:
            text += f", {self.members} components merged"
        return text + (f", at the scan's {'/'.join(self.border)} border" if self.border else "")


@dataclass(frozen=True)
class LaRange:
    """What a plausible LA looks like on the coarse grid: volume (ml), shortest and longest extent (mm), and the
    longest over the shortest extent. :meth:`from_plan` takes it from the plan's LAs and the literature."""

    ml: tuple[float, float] = (LA_ML_LITERATURE[0] / VOLUME_FACTOR, LA_ML_LITERATURE[1] * VOLUME_FACTOR)
    shortest_mm: float = LA_DIAMETER_MM_LITERATURE[0] / EXTENT_FACTOR
    longest_mm: float = LA_LONGEST_MM_LITERATURE * EXTENT_FACTOR
    elongation: float = LA_ELONGATION_MAX

    @classmethod
    def from_plan(cls, plan: Mapping) -> LaRange:
        """The range of the plan's fingerprinted LAs (``la_ml``, ``la_extent_mm``) joined with the literature's and
        widened (:data:`VOLUME_FACTOR`, :data:`EXTENT_FACTOR`, :data:`ELONGATION_FACTOR`); the literature's alone
        (widened) for a plan without LA measurements."""
        cases = [c for c in (plan.get("fingerprint") or {}).get("cases") or []
                 if c.get("la_ml") and c.get("la_extent_mm") and min(c["la_extent_mm"]) > 0]
        ml = [float(c["la_ml"]) for c in cases] or list(LA_ML_LITERATURE)
        extents = [sorted(float(e) for e in c["la_extent_mm"]) for c in cases] or [[LA_DIAMETER_MM_LITERATURE[0]] * 3]
        return cls(
            ml=(min(min(ml), LA_ML_LITERATURE[0]) / VOLUME_FACTOR, max(max(ml), LA_ML_LITERATURE[1]) * VOLUME_FACTOR),
            shortest_mm=min(min(e[0] for e in extents), LA_DIAMETER_MM_LITERATURE[0]) / EXTENT_FACTOR,
            longest_mm=max(max(e[-1] for e in extents), LA_LONGEST_MM_LITERATURE) * EXTENT_FACTOR,
            elongation=max(LA_ELONGATION_MAX, ELONGATION_FACTOR * max(e[-1] / e[0] for e in extents)),
        )

    def reasons(self, candidate: Candidate) -> list[str]:
        """Why ``candidate`` is not a plausible LA (empty: it is)."""
        found = []
        if not self.ml[0] <= candidate.ml <= self.ml[1]:
            found.append(f"volume {candidate.ml:.0f} ml outside {self.ml[0]:.0f}-{self.ml[1]:.0f} ml")
        if min(candidate.extent_mm) < self.shortest_mm:
            found.append(f"shortest extent {min(candidate.extent_mm):.0f} mm under {self.shortest_mm:.0f} mm")
        if max(candidate.extent_mm) > self.longest_mm:
            found.append(f"longest extent {max(candidate.extent_mm):.0f} mm over {self.longest_mm:.0f} mm")
        if candidate.elongation > self.elongation:
            found.append(f"longest/shortest extent {candidate.elongation:.1f} over {self.elongation:.1f}")
        return found

    def only_too_small(self, candidate: Candidate) -> bool:
        """Whether ``candidate`` fails only the lower bounds (volume, shortest extent): a piece of an LA, perhaps."""
        too_small = candidate.ml < self.ml[0] or min(candidate.extent_mm) < self.shortest_mm
        too_large = (candidate.ml > self.ml[1] or max(candidate.extent_mm) > self.longest_mm
                     or candidate.elongation > self.elongation)
        return too_small and not too_large

    def describe(self) -> str:
        """The range in words."""
        return (f"a plausible LA is {self.ml[0]:.0f}-{self.ml[1]:.0f} ml, at least {self.shortest_mm:.0f} mm and at "
                f"most {self.longest_mm:.0f} mm across, longest/shortest extent at most {self.elongation:.1f}")


def _measure(prob: np.ndarray, labels: np.ndarray, n: int, threshold: float, members: np.ndarray,
             spacing_zyx: Sequence[float]) -> list[Candidate]:
    """A :class:`Candidate` for each label ``1..n`` of ``labels`` (every label present)."""
    if n == 0:
        return []
    index = np.arange(1, n + 1)
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    voxels = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    mass = ndimage.sum_labels(prob, labels, index)
    peak = ndimage.maximum(prob, labels, index)
    found = []
    for i, box in enumerate(ndimage.find_objects(labels, n)):
        extent_zyx = [(s.stop - s.start) * d for s, d in zip(box, spacing_zyx)]
        border = tuple(side_name(a, high) for a, s in enumerate(box)
                       for high, at in ((False, s.start == 0), (True, s.stop == labels.shape[a])) if at)
        found.append(Candidate(threshold, int(members[i]), float(voxels[i]) * voxel_ml, float(mass[i]) * voxel_ml,
                               tuple(float(e) for e in extent_zyx[::-1]), float(mass[i]) / float(voxels[i]),
                               float(peak[i]), border, labels, (i + 1,)))
    return found


def la_candidates(prob: np.ndarray, threshold: float, spacing_zyx: Sequence[float], singles: bool = True,
                  merged: bool = False) -> list[Candidate]:
    """The components of ``prob > threshold`` on a coarse grid of ``spacing_zyx`` (mm) (``singles``) and, with
    ``merged``, the groups of two or more of them at most :data:`MERGE_GAP_MM` apart, each as one candidate."""
    mask = prob > threshold
    labels, n = ndimage.label(mask, structure=CONNECTIVITY)
    found = _measure(prob, labels, n, threshold, np.ones(n, int), spacing_zyx) if singles else []
    if merged and n > 1:
        reach = max(1, math.floor(MERGE_GAP_MM / (2.0 * min(spacing_zyx))))  # each side grows half the gap
        groups, m = ndimage.label(ndimage.binary_dilation(mask, CONNECTIVITY, iterations=reach), structure=CONNECTIVITY)
        groups = np.where(mask, groups, 0)
        pairs = np.unique(np.stack([groups[mask], labels[mask]]), axis=1)  # (group, component) pairs
        members = np.bincount(pairs[0], minlength=m + 1)[1:]
        found += [c for c in _measure(prob, groups, m, threshold, members, spacing_zyx) if c.members > 1]
    return found


SEARCH = ((THRESHOLD, True, False), (THRESHOLD, False, True), *((t, True, True) for t in WIDER_THRESHOLDS))
"""The search, step by step: (threshold, single components, merged components). The first step is the normal one
(:data:`OK`), the others the wider search (:data:`WIDENED`)."""


Step = tuple[int, list[Candidate], list[tuple[Candidate, list[str]]]]
"""One step of :data:`SEARCH` judged: (its index, its plausible candidates best first, its implausible ones with
their reasons)."""


def judge(candidates: Sequence[Candidate], la_range: LaRange
          ) -> tuple[list[Candidate], list[tuple[Candidate, list[str]]]]:
    """The plausible ``candidates``, best first (those not at the scan's in-plane border before those at it, then by
    probability mass), and the implausible ones with their reasons (:meth:`LaRange.reasons`), in their order."""
    plausible, rejected = [], []
    for candidate in candidates:
        reasons = la_range.reasons(candidate)
        if reasons:
            rejected.append((candidate, reasons))
        else:
            plausible.append(candidate)
    return sorted(plausible, key=lambda c: (c.at_in_plane_border, -c.mass_ml)), rejected


def _search(prob: np.ndarray, spacing_zyx: Sequence[float], la_range: LaRange) -> list[Step]:
    """Every step of :data:`SEARCH`, judged (:func:`judge`)."""
    return [(step, *judge(la_candidates(prob, threshold, spacing_zyx, singles, merged), la_range))
            for step, (threshold, singles, merged) in enumerate(SEARCH)]


def _choice(steps: Sequence[Step]) -> tuple[str, Candidate | None, list[tuple[Candidate, list[str]]]]:
    """:func:`find_la`'s answer from the judged steps."""
    rejected: list[tuple[Candidate, list[str]]] = []
    for step, plausible, implausible in steps:
        rejected += implausible
        if plausible:
            return (OK if step == 0 else WIDENED), plausible[0], rejected
    return NO_LA, None, rejected


def _guesses(steps: Sequence[Step], la_range: LaRange) -> list[Candidate]:
    """:func:`next_guesses` from the judged steps."""
    plausible = [c for _, found, _ in steps for c in found]
    partial = [c for _, _, rejected in steps for c, _ in rejected if la_range.only_too_small(c)]
    guesses, seen = [], set()
    for candidate in plausible + sorted(partial, key=lambda c: -c.mass_ml):
        key = np.packbits(candidate.mask).tobytes()  # the same voxels found at several thresholds: once, the first
        if key not in seen:
            seen.add(key)
            guesses.append(candidate)
    return guesses[1:] if plausible else guesses  # the first plausible one is the choice


def find_la(prob: np.ndarray, spacing_zyx: Sequence[float], la_range: LaRange
            ) -> tuple[str, Candidate | None, list[tuple[Candidate, list[str]]]]:
    """Stage 1's choice on a coarse probability map: (:data:`OK`, :data:`WIDENED` or :data:`NO_LA`, the chosen
    candidate, and the candidates judged implausible before it, each with its reasons).

    At each step of :data:`SEARCH` the plausible candidates not at the scan's in-plane border come first, then those
    at it; among them the one of the highest probability mass is chosen.
    """
    return _choice(_search(prob, spacing_zyx, la_range))


def next_guesses(prob: np.ndarray, spacing_zyx: Sequence[float], la_range: LaRange) -> list[Candidate]:
    """Stage 1's guesses after :func:`find_la`'s choice, best first, for stage 2 to check when it finds no LA in the
    choice (:meth:`bundle.inference.two_stage.TwoStageInferer.segment`): the other plausible candidates of every
    step of :data:`SEARCH` in its order, then the LAs stage 1 saw only in part (candidates rejected only for being
    too small, :meth:`LaRange.only_too_small`) by probability mass. A localiser sure of another structure (a vein,
    the aorta of an unusual contrast), or unsure of everything, often still sees a piece of the LA."""
    return _guesses(_search(prob, spacing_zyx, la_range), la_range)


def rejections(rejected: Sequence[tuple[Candidate, list[str]]], limit: int = REPORTED_CANDIDATES) -> str:
    """The rejected candidates of the highest probability mass, ``limit`` per threshold, with their reasons; one
    already named at a higher threshold (the same voxels) is not named again."""
    parts, named = [], set()
    for threshold in dict.fromkeys(c.threshold for c, _ in rejected):
        at = sorted(((c, r) for c, r in rejected if c.threshold == threshold), key=lambda cr: -cr[0].mass_ml)
        new = [(c, r) for c, r in at if (c.members, c.ml, c.extent_mm) not in named]
        named.update((c.members, c.ml, c.extent_mm) for c, _ in at)
        if new:
            shown = "; ".join(f"{c.describe()}: {', '.join(r)}" for c, r in new[:limit])
            more = f"; {len(new) - limit} more" if len(new) > limit else ""
            parts.append(f"at p > {threshold:g}: {shown}{more}")
    return " | ".join(parts)


@dataclass
class Location:
    """Stage 1's answer for one scan: ``status`` (:data:`OK`, :data:`WIDENED`, :data:`CROP` or :data:`NO_LA`; stage 2
    may make it :data:`SEARCHED`), the ROI on the preprocessed grid (None for :data:`NO_LA`), a sentence saying why,
    the highest LA probability, and the coarse component chosen (None for a crop or without stage 1; for
    :data:`SEARCHED`, the component on stage 2's search grid)."""

    status: str
    roi: Roi | None
    detail: str
    max_probability: float = float("nan")
    candidate: Candidate | None = None
    next_guesses: tuple[Location, ...] = field(default=(), repr=False)
    """Stage 1's further guesses (:func:`next_guesses`, each with its ROI), for stage 2 to check in turn when it finds
    no LA in this one."""


class Localizer:
    """Stage 1 with its plan: ``locate(volume, spacing)`` gives the ROI of a preprocessed (z, y, x) volume.

    Args:
        network: the trained :class:`~bundle.networks.LocalizerNet` (or its TorchScript).
        plan: the plan (its ``localizer`` and ``roi`` decisions; its fingerprint's LAs for :class:`LaRange`).
        device: where the network runs.
    """

    def __init__(self, network: torch.nn.Module, plan: Mapping, device: str | torch.device = "cpu") -> None:
        decisions = plan["decisions"]
        loc, roi = decisions["localizer"]["value"], decisions["roi"]["value"]
        self.device = torch.device(device)
        self.network = network
        self.spacing = [float(s) for s in loc["spacing"]]
        self.downsampling = int(loc["downsampling"])
        self.patch_size = [int(p) for p in loc.get("patch_size", (1, 1, 1))]
        self.margin_mm = float(roi["margin_mm"])
        self.multiple = int(roi["multiple"])
        self.crop_fov_mm = float(roi["crop_fov_mm"])
        self.la_range = LaRange.from_plan(plan)

    @torch.no_grad()
    def probabilities(self, volume: torch.Tensor | np.ndarray, spacing_xyz: Sequence[float]) -> np.ndarray:
        """LA probability (z', y', x') on the coarse grid of a preprocessed (z, y, x) volume."""
        x = to_coarse(volume, spacing_xyz, self.spacing).to(self.device)
        size = x.shape[2:]
        # as in training (SpatialPadd, replicate, symmetric): a scan smaller than the patch along an axis (the 55 mm
        # of a 2018-challenge stack) is padded to it about its centre; then up to a multiple of the down-sampling
        full = [max(n, p) for n, p in zip(size, self.patch_size)]
        full = [f + (-f) % self.downsampling for f in full]
        lo = [(f - n) // 2 for f, n in zip(full, size)]
        hi = [f - n - a for f, n, a in zip(full, size, lo)]
        if any(lo) or any(hi):
            x = F.pad(x, (lo[2], hi[2], lo[1], hi[1], lo[0], hi[0]), mode="replicate")
        was_training = getattr(self.network, "training", False)
        self.network.eval()
        logits = self.network(x)[0, 0, lo[0]: lo[0] + size[0], lo[1]: lo[1] + size[1], lo[2]: lo[2] + size[2]]
        if was_training:
            self.network.train()
        return torch.sigmoid(logits.float()).cpu().numpy()

    def locate(self, volume: torch.Tensor | np.ndarray, spacing_xyz: Sequence[float]) -> Location:
        """Stage 1 on one preprocessed (z, y, x) volume of ``spacing_xyz`` (mm)."""
        shape = tuple(volume.shape[-3:])
        if is_crop(shape, spacing_xyz, self.crop_fov_mm):
            return Location(CROP, Roi.whole(shape), f"a crop around the LA (under {self.crop_fov_mm:g} mm wide): "
                                                    "stage 1 skipped")
        prob = self.probabilities(volume, spacing_xyz)
        peak = float(prob.max()) if prob.size else 0.0
        spacing_zyx = [n * s / c for n, s, c in zip(shape, tuple(spacing_xyz)[::-1], prob.shape)]  # coarse voxels
        steps = _search(prob, spacing_zyx, self.la_range)  # one search for find_la's choice and next_guesses
        status, chosen, rejected = _choice(steps)
        guesses = tuple(self._guess(c, shape, spacing_xyz, peak) for c in _guesses(steps, self.la_range))
        if chosen is None:
            lowest = min(t for t, _, _ in SEARCH)
            if not rejected:
                return Location(NO_LA, None, f"stage 1 found no LA (highest LA probability {peak:.2f} <= {lowest:g})",
                                peak)
            return Location(NO_LA, None, f"stage 1 found no LA: no plausible LA among the components of p > "
                                         f"{', '.join(f'{t:g}' for t in dict.fromkeys(t for t, _, _ in SEARCH))} "
                                         f"({rejections(rejected)}); {self.la_range.describe()}", peak,
                            next_guesses=guesses)
        roi = roi_from_coarse_mask(chosen.mask, shape, spacing_xyz, self.margin_mm, self.multiple)
        where = f"ROI {roi.shape} voxels (z, y, x), {100 * roi.fraction_of(shape):.1f} % of the scan"
        if status == OK:
            return Location(OK, roi, f"LA found: {chosen.describe()}; {where}", peak, chosen, guesses)
        before = f"rejected before it: {rejections(rejected)}" if rejected else f"no component of p > {THRESHOLD:g}"
        detail = f"LA found by the wider search at p > {chosen.threshold:g}: {chosen.describe()}; {where}; {before}"
        logger.info("stage 1: %s", detail)
        return Location(WIDENED, roi, detail, peak, chosen, guesses)

    def _guess(self, candidate: Candidate, shape: Sequence[int], spacing_xyz: Sequence[float], peak: float
               ) -> Location:
        """One of :func:`next_guesses` as the :data:`WIDENED` location stage 2 checks."""
        roi = roi_from_coarse_mask(candidate.mask, shape, spacing_xyz, self.margin_mm, self.multiple)
        return Location(WIDENED, roi, f"stage 1's guess at p > {candidate.threshold:g}: {candidate.describe()}; ROI "
                                      f"{roi.shape} voxels (z, y, x), {100 * roi.fraction_of(shape):.1f} % of the scan",
                        peak, candidate)
