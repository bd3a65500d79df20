"""3D post-processing of the [LA, scar] prediction (the multi-task LA U-Net paper's, Sec. 2.3).

The LA is the largest connected component of the (optionally closed) union of the LA and scar masks (scar is LA
wall, label 2 inside label > 0), and scar is kept only inside that LA, so a stray bright blob far from the atrium
never counts as LA or scar, and scar the network finds on the wall's outer edge is not cut off where the LA channel
stops just short of it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import KeepLargestConnectedComponent, MapTransform
from scipy import ndimage
from skimage.morphology import disk

from bundle.preprocessing.roi import mask_box


def la_or_scar(pred: torch.Tensor) -> torch.Tensor:
    """The LA the network found in a binary (2, ...) [LA, scar] prediction, (1, ...): its LA or its scar channel,
    since scar is LA wall."""
    return (pred[:1] > 0.5) | (pred[1:] > 0.5)


def postprocess(pred: torch.Tensor, closing_radius: int = 0) -> torch.Tensor:
    """Binary (2, ...) [LA, scar] -> the same with LA = largest component of LA OR scar (after an in-plane closing
    of ``closing_radius`` voxels when > 0) and scar = scar AND LA. Works for 2D and 3D spatial shapes.

    The closing's element is scikit-image's ``disk`` (x^2 + y^2 <= r^2), padded so the outside is background. It
    is not SimpleITK's ``sitkBall`` of :mod:`bundle.data.wall` and :mod:`bundle.data.toolkit` (which reproduce the
    toolkit's own element): that ball is larger for the same radius (r = 1 is a 3 x 3 square, r = 2 has 21 pixels
    against the disk's 13), so it would close more and change the masks.
    """
    if pred.shape[0] != 2:
        raise ValueError(f"expected two channels [LA, scar], got shape {tuple(pred.shape)}")
    la = la_or_scar(pred)
    if closing_radius > 0:
        mask = la[0].cpu().numpy()
        structure = disk(closing_radius).astype(bool).reshape((1,) * (mask.ndim - 2) + (2 * closing_radius + 1,) * 2)
        closed = ndimage.binary_closing(np.pad(mask, closing_radius), structure=structure)
        closed = closed[tuple(slice(closing_radius, -closing_radius) for _ in mask.shape)]
        la = torch.as_tensor(closed, device=pred.device)[None]
    la = KeepLargestConnectedComponent(applied_labels=[1], is_onehot=False)(la.to(torch.uint8)) > 0
    la = torch.as_tensor(la, device=pred.device)
    scar = (pred[1:] > 0.5) & la
    return torch.cat([la, scar]).to(pred.dtype)


def postprocess_box(pred: torch.Tensor, closing_radius: int = 0) -> torch.Tensor:
    """:func:`postprocess` run only on the box of the LA and scar channels' voxels (padded by the closing radius):
    the same result as on the whole volume, since the closing treats the outside as background, at the cost of the
    LA's box instead of the whole scan's."""
    la = la_or_scar(pred)[0].cpu().numpy()
    found = mask_box(la)
    if found is None:
        return torch.zeros_like(pred)
    pad = closing_radius + 1
    box = [slice(max(0, a - pad), min(n, b + pad)) for a, b, n in zip(*found, la.shape)]
    out = torch.zeros_like(pred)
    out[(slice(None), *box)] = postprocess(pred[(slice(None), *box)], closing_radius)
    return out


class PostProcessd(MapTransform):
    """Dictionary version of :func:`postprocess` (for evaluators' and inference post-processing)."""

    def __init__(self, keys: KeysCollection = "pred", closing_radius: int = 0, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.closing_radius = closing_radius

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = postprocess_box(torch.as_tensor(d[key]), self.closing_radius)
        return d
