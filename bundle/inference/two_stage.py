"""Both stages on a preprocessed whole volume: stage 1 finds the ROI, stage 2 segments only its slices and pixels.

:class:`TwoStageInferer` is a MONAI ``Inferer``: validation during training (``SupervisedEvaluator``) and
inference (:class:`bundle.inference.segmenter.Segmenter`) run whole scans through it, so the validation Dice is the number a
user gets. Stage 2 sees the ROI z-scored with its own moments, as its training patches are, and, like them, at
least a patch's width of the scan around it (``context``: a ROI narrower than the training patch is widened for the
network, and a scan narrower than it, a crop, is padded with zeros as its training slices are; the logits are kept
inside the ROI). Outside the ROI the [LA, scar] logits are :data:`BACKGROUND_LOGIT`
(probability ~1e-13).

The box never cuts the LA away: when stage 2's LA (its largest component, ``p > 0.5``) reaches a side of the ROI
that is not a side of the image (a pulmonary vein or the appendage leaves the box), the ROI grows on those sides by
the plan's margin and stage 2 runs again, at most :data:`MAX_ROI_GROWTHS` times (:meth:`TwoStageInferer.segment_grown`).
Stage 2 also checks stage 1: where it finds no plausible LA in stage 1's ROI, or stage 1 found none, it segments
stage 1's further guesses in turn (at most :data:`MAX_GUESSES`) and keeps the first holding a plausible LA
(:meth:`TwoStageInferer.segment`); when none holds one, stage 2 searches the whole field of view itself
(:meth:`TwoStageInferer.search_scan`, every few slices, window by window) before the scan is "no LA".
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import Inferer, SliceInferer

from bundle.inference.localizer import (
    CROP,
    NO_LA,
    SEARCHED,
    THRESHOLD,
    Localizer,
    Location,
    judge,
    la_candidates,
    largest_component,
    side_name,
)
from bundle.inference.rotations import RotationAverage, checked_angles
from bundle.preprocessing.neighbours import neighbour_offset, stack_neighbours
from bundle.preprocessing.roi import ROI_EPSILON, Roi, mask_box, roi_from_box, roi_moments

logger = logging.getLogger(__name__)

BACKGROUND_LOGIT = -30.0
"""Logit written outside the ROI: sigmoid(-30) ~ 1e-13, i.e. background."""

MAX_ROI_GROWTHS = 2
"""How many times at most the ROI grows (by the plan's margin on the sides the LA reaches) and stage 2 runs again:
a vein or the appendage may leave stage 1's box by up to two more margins (22 mm in plans/phantom.json), and a
validation scan costs at most three stage-2 passes."""

MAX_GUESSES = 3
"""How many of stage 1's further guesses stage 2 checks at most when it finds no plausible LA in stage 1's choice
(each costs a stage-2 pass, and its ROI growths)."""

SCAN_SEARCH_STEP_MM = 5.0
"""Slice step (mm) of stage 2's search of the whole field of view (:meth:`TwoStageInferer.search_scan`): every k-th
slice, k = round(5 mm / the slice spacing), at least 1 (every 2nd slice of a 2.5 mm Utah scan, every 8th of a 2018
challenge scan). A plausible LA is at least 17 ml and tens of mm tall, so it still spans several of them."""

SCAN_SEARCH_OVERLAP = 0.5
"""How much neighbouring windows of that search overlap, as a share of the window (stage 2's training patch, 160 mm
in plans/phantom.json): half, so any LA up to half a window across lies whole inside one window."""

SCAN_SEARCH_TRIES = 2
"""How many of the LAs the search found stage 2 segments at most, best first (each a full stage-2 pass on its ROI)."""

ROI_GROWTH_MIN_MM2 = 5.0
"""LA area (mm^2) on an inner side of the ROI from which the LA counts as reaching it: the quality check's border
rule (:attr:`bundle.quantification.qc.QcRules.border_min_mm2`), so a few voxels of vein tip do not make it grow."""


def reached_sides(la: np.ndarray, roi: Roi, shape_zyx: Sequence[int], spacing_xyz: Sequence[float],
                  min_mm2: float = ROI_GROWTH_MIN_MM2) -> list[tuple[int, bool]]:
    """The inner sides of ``roi`` (``(axis, high)``, :meth:`~bundle.preprocessing.roi.Roi.inner_sides`) on which the
    (z, y, x) mask ``la`` of the ROI has at least ``min_mm2`` mm^2 of voxels, in an image of ``shape_zyx`` and
    ``spacing_xyz`` (mm)."""
    spacing_zyx = tuple(float(s) for s in spacing_xyz)[::-1]
    reached = []
    for axis, high in roi.inner_sides(shape_zyx):
        face = np.take(la, -1 if high else 0, axis=axis)
        area = math.prod(d for a, d in enumerate(spacing_zyx) if a != axis)
        if np.count_nonzero(face) * area >= min_mm2:
            reached.append((axis, high))
    return reached


def window_starts(size: int, window: int, overlap: float = SCAN_SEARCH_OVERLAP) -> list[int]:
    """Where windows of ``window`` voxels start along an axis of ``size`` voxels so that they cover it, neighbours
    overlapping by ``overlap`` of a window and the last one ending at the axis's end (one window at 0 when it is at
    least the axis)."""
    if size <= window:
        return [0]
    step = max(1, int(window * (1.0 - overlap)))
    starts = list(range(0, size - window + 1, step))
    return starts if starts[-1] == size - window else [*starts, size - window]


def _spacing(value: Any) -> list[float] | None:
    """Spacing (x, y, z) from a list, an array, or a collated (1, 3) tensor."""
    if value is None:
        return None
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() != 3:
        raise ValueError(f"expected one (x, y, z) spacing, got {tuple(torch.as_tensor(value).shape)}")
    return [float(v) for v in t]


def _nth(n: int) -> str:
    """``1st``, ``2nd``, ``3rd``, ``4th``, ... ``11th``, ``12th``, ``21st``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class TwoStageInferer(Inferer):
    """Stage 1 (``localizer``) then stage 2 (the ``network`` given at call time) on one (1, C, Z, Y, X) volume.

    Args:
        localizer: stage 1; None treats every volume as a crop (stage 2 on the whole volume).
        roi_inferer: how stage 2 runs on the ROI; default slice by slice along z, each ROI slice whole.
        batch_size: slices per forward pass of the default ``roi_inferer``.
        roi_growths: how many times at most the ROI grows where stage 2's LA reaches its side (0: never).
        context: the in-plane size (y, x) of stage 2's training patches: the network sees at least that much of the
            scan around the ROI (None: the ROI alone).
        neighbour_mm: a 2.5D stage 2's neighbouring slices, about this many mm below and above each slice of the
            ROI (:mod:`bundle.preprocessing.neighbours`; the scan's spacing is then needed); None: a 2D stage 2.
        scan_search: whether stage 2 searches the whole field of view (:meth:`search_scan`) when neither stage 1's
            choice nor its guesses hold a plausible LA.
        rotations_deg: stage 2's test-time augmentation: each ROI pass is the mean of its probabilities over the
            slices turned by these in-plane angles (:class:`~bundle.inference.rotations.RotationAverage`; 0 is the
            slice as it is), its cost that many passes; the search's windows are never turned (they only point at
            ROIs, which are then segmented with it). None or empty: the slices as they are, one pass.

    ``last_location`` holds stage 1's answer for the latest volume (its status, the ROI stage 2 segmented, and why).
    """

    def __init__(self, localizer: Localizer | None = None, roi_inferer: Inferer | None = None,
                 batch_size: int = 8, roi_growths: int = MAX_ROI_GROWTHS,
                 context: Sequence[int] | None = None, neighbour_mm: float | None = None,
                 scan_search: bool = True, rotations_deg: Sequence[float] | None = None) -> None:
        super().__init__()
        self.scan_search = bool(scan_search)
        self.rotations_deg = checked_angles(rotations_deg) if rotations_deg else ()  # refused now, not on a scan
        self.context = None if context is None else tuple(int(c) for c in context)
        self.neighbour_mm = None if neighbour_mm is None else float(neighbour_mm)
        self.localizer = localizer
        self.roi_inferer = roi_inferer or SliceInferer(roi_size=(-1, -1), spatial_dim=0, sw_batch_size=batch_size,
                                                       progress=False)
        self.roi_growths = int(roi_growths)
        self.last_location: Location | None = None

    def locate(self, inputs: torch.Tensor, spacing: Sequence[float] | None) -> Location:
        """Stage 1 on the first channel of a (1, C, Z, Y, X) volume."""
        shape = tuple(inputs.shape[-3:])
        if self.localizer is None or spacing is None:
            return Location(CROP, Roi.whole(shape), "no stage 1: the whole volume is segmented")
        return self.localizer.locate(inputs[0, 0], spacing)

    def segment_roi(self, inputs: torch.Tensor, network: Callable, roi: Roi,
                    spacing: Sequence[float] | None = None, rotate: bool = True) -> torch.Tensor:
        """Stage 2's logits (1, 2, *roi.shape) on the ROI of a (1, C, Z, Y, X) volume of ``spacing`` (x, y, z) mm,
        as :meth:`network_input` gives it, seen within its ``context`` window; averaged over ``rotations_deg`` when
        set and ``rotate``."""
        if rotate and any(self.rotations_deg):   # [0] is the slices as they are: one pass, no wrapper
            network = RotationAverage(network, self.rotations_deg)
        window = roi if self.context is None else roi.widened_to(self.context, inputs.shape[-3:])
        x = self.network_input(inputs, roi, spacing, window)
        # a scan narrower than the patch (a crop) is padded with zeros (the ROI's mean) about its centre, as
        # training's SpatialPadd pads its slices
        short = [0, 0] if self.context is None else [max(0, c - n) for c, n in zip(self.context, x.shape[-2:])]
        before = [d // 2 for d in short]
        if any(short):
            x = F.pad(x, (before[1], short[1] - before[1], before[0], short[0] - before[0]))
        logits = self.roi_inferer(x.contiguous(), network)
        offset = (window.start[0], window.start[1] - before[0], window.start[2] - before[1])
        return logits[(..., *(slice(a - o, b - o) for a, b, o in zip(roi.start, roi.stop, offset)))]

    def network_input(self, inputs: torch.Tensor, roi: Roi, spacing: Sequence[float] | None = None,
                      window: Roi | None = None) -> torch.Tensor:
        """What stage 2 sees of the ``window`` (default: the ROI itself) of a (1, 1, Z, Y, X) volume: z-scored with
        the ROI's own moments as in training (:func:`bundle.preprocessing.roi.roi_moments`), and for a 2.5D network
        (``neighbour_mm``) each slice with its neighbours as channels, taken from the scan around the window."""
        window = roi if window is None else window
        mean, std = roi_moments(inputs, roi)
        (z0, z1), offset = (window.start[0], window.stop[0]), 0
        if self.neighbour_mm is not None:
            if spacing is None:
                raise ValueError("a 2.5D stage 2 (neighbour_mm) needs the scan's spacing")
            offset = neighbour_offset(float(spacing[2]), self.neighbour_mm)
        lo, hi = max(0, z0 - offset), min(inputs.shape[-3], z1 + offset)
        x = (inputs[(..., slice(lo, hi), *window.slices[1:])] - mean) / max(std, ROI_EPSILON)
        return stack_neighbours(x, offset, z0 - lo, z1 - lo) if offset else x

    def segment(self, inputs: torch.Tensor, network: Callable, location: Location,
                spacing: Sequence[float] | None) -> tuple[Location, torch.Tensor | None]:
        """Stage 2 on the ROI of ``location`` of a (1, C, Z, Y, X) volume of ``spacing`` (x, y, z) mm, the ROI grown
        where the LA leaves it (:meth:`segment_grown`): the location with the ROI finally segmented, and its logits
        (1, 2, *roi.shape).

        Stage 2 checks stage 1: when its LA (largest component of ``p > 0.5``) is smaller than any plausible LA
        (:attr:`~bundle.inference.localizer.LaRange.ml`), the LA is not there (stage 1 chose another structure), and
        stage 1's further guesses (``location.next_guesses``) are segmented in turn, skipping those that overlap a
        guess already refuted, at most :data:`MAX_GUESSES`; the first with a plausible LA is the answer
        (:data:`~bundle.inference.localizer.WIDENED`, its detail says what was refuted). When none holds one (or
        stage 1 found nothing at all) and ``scan_search`` is on, stage 2 searches the whole field of view
        (:meth:`search_scan`) and segments the LAs it found in turn, at most :data:`SCAN_SEARCH_TRIES`
        (:data:`~bundle.inference.localizer.SEARCHED`). A crop is never searched: it is the whole field of view.
        Without a plausible LA anywhere (a crop: in the crop) the scan has none: a
        :data:`~bundle.inference.localizer.NO_LA` location (no ROI) and no logits, ``(location, None)``, its detail
        saying what stage 1 found and what stage 2 refuted (a stage-2 LA below the plausible volume is not reported
        as the scan's LA).
        """
        if self.localizer is None or spacing is None:
            return location, self.segment_roi(inputs, network, location.roi, spacing)
        least_ml = self.localizer.la_range.ml[0]
        first: Location | None = None  # stage 1's choice, when stage 2 refuted it
        refuted: list[str] = []
        tried: list[np.ndarray] = []

        def none_in(where: str) -> str:
            return f"stage 2 found no plausible LA (at least {least_ml:.0f} ml) in {where}"

        def answer(found: Location, logits: torch.Tensor) -> tuple[Location, torch.Tensor]:
            why = [] if first is not None else [location.detail]
            if refuted:
                why.append(none_in(", ".join(refuted)))
            detail = "; ".join([*why, found.detail])
            logger.info("stage 2: %s", detail)
            return dataclasses.replace(found, detail=detail), logits

        if location.roi is not None:
            found, logits, la_ml = self.segment_grown(inputs, network, location, spacing)
            if la_ml >= least_ml:
                return found, logits
            if location.status == CROP:  # the whole field of view: nowhere else to look
                note = none_in(f"the crop ({la_ml:.1f} ml)")
                logger.info("stage 2: %s", note)
                return dataclasses.replace(found, status=NO_LA, roi=None, detail=f"{found.detail}; {note}"), None
            first = found
            refuted.append(f"stage 1's choice ({la_ml:.1f} ml)")
            if location.candidate is not None:
                tried.append(location.candidate.mask)
        checked = 0
        for guess in location.next_guesses:
            if checked == MAX_GUESSES:
                break
            mask = guess.candidate.mask if guess.candidate is not None else None
            if mask is not None and any(np.any(mask & t) for t in tried):
                continue
            checked += 1
            found, logits, la_ml = self.segment_grown(inputs, network, guess, spacing)
            if la_ml >= least_ml:
                return answer(found, logits)
            refuted.append(f"a guess of {guess.candidate.ml:.0f} ml ({la_ml:.1f} ml)" if guess.candidate is not None
                           else f"a guess ({la_ml:.1f} ml)")
            if mask is not None:
                tried.append(mask)
        if self.scan_search:
            searched, summary = self.search_scan(inputs, network, spacing)
            for guess in searched[:SCAN_SEARCH_TRIES]:
                found, logits, la_ml = self.segment_grown(inputs, network, guess, spacing)
                if la_ml >= least_ml:
                    return answer(found, logits)
                refuted.append(f"its search's component of {guess.candidate.ml:.1f} ml ({la_ml:.1f} ml)")
            if not searched:
                refuted.append(summary)
        note = none_in(", ".join(refuted)) if refuted else ""
        if first is None:
            return dataclasses.replace(location, detail=f"{location.detail}; {note}" if note else location.detail), None
        logger.info("stage 2: %s", note)
        detail = f"stage 1's choice: {first.detail}; {note}"
        return dataclasses.replace(first, status=NO_LA, roi=None, detail=detail), None

    def search_scan(self, inputs: torch.Tensor, network: Callable, spacing: Sequence[float]
                    ) -> tuple[list[Location], str]:
        """Stage 2 over the whole field of view of a (1, C, Z, Y, X) volume of ``spacing`` (x, y, z) mm, for a scan
        on which stage 1 missed the LA: the LAs it may have found, best first, as
        :data:`~bundle.inference.localizer.SEARCHED` locations (each with its ROI on the volume, its ``candidate``
        the component on the search's grid), and a phrase saying what the search saw (for a detail without one).

        Stage 2 runs on every k-th slice (:data:`SCAN_SEARCH_STEP_MM`) in windows of its training patch
        (``context``; the whole slice without one) overlapping by :data:`SCAN_SEARCH_OVERLAP`, each window z-scored
        with its own moments as a ROI is; the LA probabilities of overlapping windows are averaged. The components of
        ``p > 0.5`` are judged as stage 1 judges its own (:meth:`~bundle.inference.localizer.LaRange.reasons`, the
        plan's and the literature's LA) and ranked as it ranks them (not at the scan's in-plane border first, then
        by probability mass); after them come those only too small (:meth:`~bundle.inference.localizer.LaRange.
        only_too_small`), by mass: on sparse slices, with windows that see the LA at their edge averaged in, the
        search's LA is smaller than the full pass's (on 45 whole phantom scans 0.17-0.91 of it), and the full pass
        on its ROI decides. A 2.5D stage 2 takes its neighbours among the searched slices.
        """
        shape = tuple(int(n) for n in inputs.shape[-3:])
        step = max(1, round(SCAN_SEARCH_STEP_MM / float(spacing[2])))
        z0 = min(step // 2, shape[0] - 1)
        sparse = inputs[..., z0::step, :, :]
        sparse_spacing = (float(spacing[0]), float(spacing[1]), float(spacing[2]) * step)
        window = self.context or shape[1:]
        total = torch.zeros((sparse.shape[-3], *shape[1:]))
        count = torch.zeros(shape[1:])
        windows = 0
        for y0 in window_starts(shape[1], window[0]):
            for x0 in window_starts(shape[2], window[1]):
                roi = Roi((0, y0, x0), (sparse.shape[-3], min(shape[1], y0 + window[0]), min(shape[2], x0 + window[1])))
                logits = self.segment_roi(sparse, network, roi, sparse_spacing, rotate=False)
                total[roi.slices] += torch.sigmoid(logits[0, 0].float()).cpu()
                count[roi.slices[1:]] += 1
                windows += 1
        prob = (total / count).numpy()
        la_range = self.localizer.la_range
        candidates = la_candidates(prob, THRESHOLD, sparse_spacing[::-1])
        plausible, rejected = judge(candidates, la_range)
        ranked = plausible + sorted((c for c, _ in rejected if la_range.only_too_small(c)), key=lambda c: -c.mass_ml)
        every = f"every {_nth(step)} slice" if step > 1 else "every slice"
        how = f"{windows} window(s) of {window[0]} x {window[1]} voxels on {every}"
        found = []
        for candidate in ranked:
            lo, hi = mask_box(candidate.mask)
            z_lo = max(0, z0 + lo[0] * step - step // 2)  # a searched slice stands for the step's slices about it
            z_hi = min(shape[0], z0 + (hi[0] - 1) * step - step // 2 + step)
            roi = roi_from_box((z_lo, lo[1], lo[2]), (z_hi, hi[1], hi[2]), shape, spacing, self.localizer.margin_mm,
                               self.localizer.multiple)
            found.append(Location(SEARCHED, roi, (
                f"LA found by stage 2's search of the whole field of view ({how}): {candidate.describe()}; ROI "
                f"{roi.shape} voxels (z, y, x), {100 * roi.fraction_of(shape):.1f} % of the scan"),
                float(prob.max()), candidate))
        if not candidates:
            seen = f"no component of p > {THRESHOLD:g}"
        else:
            largest = max(candidates, key=lambda c: c.ml)
            reasons = la_range.reasons(largest)
            seen = f"the largest component {largest.describe()}" + (f": {', '.join(reasons)}" if reasons else "")
        return found, f"its search of the whole field of view ({how}: {seen})"

    def segment_grown(self, inputs: torch.Tensor, network: Callable, location: Location,
                      spacing: Sequence[float]) -> tuple[Location, torch.Tensor, float]:
        """Stage 2 on the ROI of ``location`` (not None) of a (1, C, Z, Y, X) volume of ``spacing`` (x, y, z) mm:
        the location with the ROI finally segmented, its logits (1, 2, *roi.shape) and the volume (ml) of its LA
        (the largest component of ``p > 0.5``).

        While stage 2's LA reaches inner sides of the ROI (:func:`reached_sides`), the ROI grows there by stage 1's
        margin (in-plane rounded to its multiple) and is segmented again, at most ``roi_growths`` times; it stops
        early at the image's border, and when the LA is already larger than any plausible LA
        (:attr:`~bundle.inference.localizer.LaRange.ml`): a stage 2 that labels that much is not held back by the box.
        """
        roi, shape = location.roi, tuple(inputs.shape[-3:])
        logits = self.segment_roi(inputs, network, roi, spacing)
        spacing_zyx = tuple(float(s) for s in spacing)[::-1]
        voxel_ml = math.prod(spacing_zyx) / 1000.0
        grown: list[str] = []
        la = largest_component((logits[0, 0] > 0).cpu().numpy())
        for _ in range(self.roi_growths):
            sides = reached_sides(la, roi, shape, spacing)
            if not sides or np.count_nonzero(la) * voxel_ml > self.localizer.la_range.ml[1]:
                break
            pads = [[0.0] * 3, [0.0] * 3]
            for axis, high in sides:
                pads[high][axis] = self.localizer.margin_mm / spacing_zyx[axis]
            bigger = roi.grown(pads[0], pads[1], shape, self.localizer.multiple)
            if bigger == roi:
                break
            grown.append("/".join(side_name(a, h) for a, h in sides))
            roi, logits = bigger, self.segment_roi(inputs, network, bigger, spacing)
            la = largest_component((logits[0, 0] > 0).cpu().numpy())
        if grown:
            location = dataclasses.replace(location, roi=roi, detail=(
                f"{location.detail}; ROI grown {len(grown)} time(s) by the {self.localizer.margin_mm:g} mm margin "
                f"where the LA reached its side ({', '.join(grown)}) to {roi.shape} voxels (z, y, x)"))
            logger.info("stage 2: %s", location.detail)
        return location, logits, np.count_nonzero(la) * voxel_ml

    def __call__(self, inputs: torch.Tensor, network: Callable, *args: Any, spacing: Any = None,
                 **kwargs: Any) -> torch.Tensor:
        """[LA, scar] logits (1, 2, Z, Y, X) of a volume of ``spacing`` (x, y, z) mm: stage 2 inside the ROI (grown
        where the LA reaches its side, :meth:`segment`), :data:`BACKGROUND_LOGIT` outside it (and everywhere when
        stage 1 finds no LA)."""
        if inputs.shape[0] != 1:
            raise ValueError(f"one volume at a time, got a batch of {inputs.shape[0]}")
        spacing = _spacing(spacing)
        location = self.locate(inputs, spacing)
        out = torch.full((1, 2, *inputs.shape[-3:]), BACKGROUND_LOGIT, dtype=inputs.dtype, device=inputs.device)
        location, logits = self.segment(inputs, network, location, spacing)
        if logits is not None:
            out[(..., *location.roi.slices)] = logits.to(out.dtype)
        self.last_location = location
        return out
