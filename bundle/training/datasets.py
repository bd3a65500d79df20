"""Data items for training (whole 2D axial slices of whole scans) and validation (whole volumes).

Items are dictionaries with MONAI's keys (``image``, ``label``) plus ``scan``, ``patient`` and
``ablation``; arrays are channel-first: a slice is (1, H, W), a volume (1, Z, H, W) in the
(z, y, x) order of the preprocessed arrays, so ``SliceInferer(spatial_dim=0)`` walks axial slices.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from monai.transforms.utils import generate_spatial_bounding_box

from bundle.data.labels import SCAR
from bundle.inference.localizer import to_coarse
from bundle.preprocessing.neighbours import neighbour_indices, neighbour_offset
from bundle.preprocessing.roi import ROI_EPSILON, label_roi, roi_moments

NEAR, LA_CLASS, SCAR_CLASS = 1, 2, 3
"""Classes of the patch-centre sampling map (0 is background far from the LA)."""


def la_box(label: np.ndarray, margin: Sequence[int]) -> tuple[slice, slice]:
    """In-plane box (rows, columns) of the LA over all slices of a (z, y, x) label, widened by ``margin`` (rows,
    columns) on each side and clipped to the image (generate_spatial_bounding_box on the LA's projection)."""
    start, end = generate_spatial_bounding_box(np.asarray(label).any(axis=0)[None], margin=[int(m) for m in margin],
                                              allow_smaller=True)
    return slice(start[0], end[0]), slice(start[1], end[1])


def slice_step(spacing_z: float, step_mm: float | None) -> int:
    """Every how many slices a scan of slice spacing ``spacing_z`` is sampled to keep about ``step_mm`` between
    training slices (1 for None or slices thicker than that)."""
    return 1 if not step_mm else max(1, int(round(float(step_mm) / float(spacing_z))))


NEIGHBOUR_KEYS = ("image_below", "image_above")
"""The keys of a training slice's neighbours (2.5D input), joined to ``image`` as [below, image, above] by
``ConcatItemsd`` in the training transforms (:mod:`bundle.preprocessing.neighbours`)."""


def training_slices(cases: Sequence[dict], patch_size: Sequence[int], slice_margin: int | None = None,
                    roi_margin_mm: float = 10.0, roi_multiple: int = 1, slice_step_mm: float | None = None,
                    neighbour_mm: float | None = None) -> list[dict]:
    """Whole axial slices of the preprocessed whole-field-of-view ``cases`` (views, not copies).

    ``slice_step_mm``: keep about this many millimetres between the slices taken (:func:`slice_step`; None: every
    slice), so a 0.625 mm isotropic scan (88 slices) weighs no more than a 2.5 mm one (44 slices) in an epoch and
    its neighbouring, nearly identical slices do not repeat. ``slice_margin``: keep the slices holding LA plus this
    many (sampled) slices above and below (None: every slice), the slices stage 2 sees inside the ROI at inference.
    Each item carries ``near``, the in-plane box of the LA widened
    by half a patch, for :class:`SamplingMapd`: patches are centred on far background, near background (the other
    blood pools, the aorta and oesophagus next to the LA), LA and scar in chosen ratios, so the network learns what
    is not LA all over the field of view and most of all around the LA. ``roi_mean`` and ``roi_std`` are the moments
    of the scan inside the ROI stage 1 gives its LA (box plus ``roi_margin_mm``, rounded to ``roi_multiple``), for
    :class:`RoiNormalized`: stage 2 sees every ROI z-scored with its own moments. ``neighbour_mm`` (2.5D input):
    each item also carries the slices about that far below and above (:data:`NEIGHBOUR_KEYS`, views as well).
    """
    items = []
    for case in cases:
        image, label = case["image"], case["label"]
        if not label.any():
            continue
        rows, cols = la_box(label, (patch_size[0] // 2, patch_size[1] // 2))
        roi = label_roi(label, case["spacing"], roi_margin_mm, roi_multiple)
        mean, std = roi_moments(image, roi)
        la_z = np.nonzero(label.reshape(label.shape[0], -1).any(axis=1))[0]
        step = slice_step(case["spacing"][2], slice_step_mm)
        margin = label.shape[0] if slice_margin is None else int(slice_margin) * step
        first = la_z[0] - min(margin, la_z[0]) // step * step  # on the same phase as the LA's first slice
        offset = None if neighbour_mm is None else neighbour_offset(case["spacing"][2], neighbour_mm)
        for z in range(first, min(label.shape[0], la_z[-1] + 1 + margin), step):
            item = {
                "image": image[z][None], "label": label[z][None], "near": [rows.start, rows.stop, cols.start, cols.stop],
                "roi_mean": mean, "roi_std": max(std, ROI_EPSILON),
                "scan": case["scan"], "patient": case["patient"], "ablation": case["ablation"], "slice": int(z),
            }
            if offset is not None:
                below, _, above = neighbour_indices(z, image.shape[0], offset)
                item.update(zip(NEIGHBOUR_KEYS, (image[below][None], image[above][None])))
            items.append(item)
    if not items:
        raise ValueError("no training slice holds LA: the training split has no labelled LA")
    return items


class RoiNormalized(MapTransform):
    """Z-scores ``keys`` with the item's ``roi_mean`` and ``roi_std`` (see :func:`training_slices`): the training
    image as stage 2 sees it inside stage 1's ROI at inference (:func:`bundle.preprocessing.roi.roi_normalized`)."""

    def __init__(self, keys: KeysCollection = "image", mean_key: str = "roi_mean", std_key: str = "roi_std") -> None:
        super().__init__(keys)
        self.mean_key, self.std_key = mean_key, std_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = (d[key] - float(d[self.mean_key])) / float(d[self.std_key])
        return d


class SamplingMapd(MapTransform):
    """Adds ``sampling``, a (1, H, W) map of patch-centre classes of a training slice, for
    ``RandCropByLabelClassesd(label_key="sampling", num_classes=4, ratios=[far, near, LA, scar])``: 0 background
    far from the LA, 1 background inside the item's ``near`` box, 2 LA, 3 scar."""

    def __init__(self, keys: KeysCollection = "label", near_key: str = "near", sampling_key: str = "sampling") -> None:
        super().__init__(keys)
        self.near_key, self.sampling_key = near_key, sampling_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            label = np.asarray(d[key])
            sampling = np.zeros(label.shape, np.uint8)
            r0, r1, c0, c1 = (int(v) for v in d[self.near_key])
            sampling[..., r0:r1, c0:c1] = NEAR
            sampling[label > 0] = LA_CLASS
            sampling[label == SCAR] = SCAR_CLASS
            d[self.sampling_key] = sampling
        return d


def validation_volumes(cases: Sequence[dict]) -> list[dict]:
    """Whole preprocessed volumes as channel-first items for slice-wise validation."""
    return [
        {"image": case["image"][None], "label": case["label"][None], "scan": case["scan"],
         "patient": case["patient"], "ablation": case["ablation"], "spacing": case["spacing"]}
        for case in cases
    ]


def label_to_targets(label: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Bundle label map (1, ...) with 0/1/2 -> two binary channels (2, ...): [LA = label > 0, scar = label == 2]."""
    if label.shape[0] != 1:
        raise ValueError(f"expected a one-channel label map, got shape {tuple(label.shape)}")
    if isinstance(label, torch.Tensor):
        return torch.cat([label > 0, label == SCAR]).to(torch.float32)
    return np.concatenate([label > 0, label == SCAR]).astype(np.float32)


class LabelToTargetsd(MapTransform):
    """Dictionary transform applying :func:`label_to_targets` (the networks' [LA, scar] channel layout)."""

    def __init__(self, keys: KeysCollection = "label", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = label_to_targets(d[key])
        return d


COARSE_LA_FRACTION = 0.25
"""A coarse voxel is LA in stage 1's training target when LA fills at least this share of it (a half would drop
the thin pulmonary veins, whose tips the ROI must hold)."""


def localizer_items(cases: Sequence[Mapping], plan: Mapping) -> list[dict]:
    """Stage-1 training items of preprocessed cases: coarse image and coarse LA target, each (1, z, y, x).

    A coarse voxel is LA when the fine LA fills at least :data:`COARSE_LA_FRACTION` of it.
    """
    target = plan["decisions"]["localizer"]["value"]["spacing"]
    items = []
    for case in cases:
        spacing = [float(s) for s in case["spacing"]]
        image = to_coarse(case["image"], spacing, target)[0]
        la = to_coarse(np.asarray(case["label"]) > 0, spacing, target)[0] >= COARSE_LA_FRACTION
        items.append({"image": image.numpy(), "label": la.to(torch.float32).numpy(), "scan": case.get("scan", "")})
    if not items:
        raise ValueError("no scans to train the localiser on")
    return items
