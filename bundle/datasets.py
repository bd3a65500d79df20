"""Data items for training (2D axial slices around the LA) and validation (whole volumes).

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

from bundle.labels import SCAR


def _la_box(label: np.ndarray, patch_size: Sequence[int]) -> tuple[slice, slice]:
    """In-plane box of the LA over all slices, widened by half a patch each side (clipped to the image)."""
    ys, xs = np.nonzero(label.any(axis=0))
    h, w = label.shape[1:]
    half_h, half_w = patch_size[0] // 2, patch_size[1] // 2
    return (
        slice(max(0, ys.min() - half_h), min(h, ys.max() + 1 + half_h)),
        slice(max(0, xs.min() - half_w), min(w, xs.max() + 1 + half_w)),
    )


def training_slices(cases: Sequence[dict], patch_size: Sequence[int], slice_margin: int | None = None) -> list[dict]:
    """Axial slices of the preprocessed ``cases``, cropped in-plane around the LA.

    ``slice_margin``: keep the slices holding LA plus this many slices above and below (None: every
    slice). Slices past the LA teach the network where there is no LA (the aorta, the pulmonary
    artery and the other chambers above and below it); without them a 2D network labels those
    blood pools LA. The crop (the LA's in-plane box plus half a patch each side) keeps every patch a
    random crop centred on an LA or scar pixel can take, and keeps memory small for full-size scans.
    """
    items = []
    for case in cases:
        image, label = case["image"], case["label"]
        if not label.any():
            continue
        rows, cols = _la_box(label, patch_size)
        la_z = np.nonzero(label.reshape(label.shape[0], -1).any(axis=1))[0]
        margin = label.shape[0] if slice_margin is None else int(slice_margin)
        for z in range(max(0, la_z[0] - margin), min(label.shape[0], la_z[-1] + 1 + margin)):
            items.append({
                "image": np.ascontiguousarray(image[z, rows, cols][None]),
                "label": np.ascontiguousarray(label[z, rows, cols][None]),
                "scan": case["scan"], "patient": case["patient"], "ablation": case["ablation"], "slice": int(z),
            })
    if not items:
        raise ValueError("no training slice holds LA: the training split has no labelled LA")
    return items


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
