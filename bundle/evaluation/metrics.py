"""Per-case segmentation metrics of the JAS-GAN paper (Section IV-C): DSC, JI, ASD, HD95, NMI, OSR, USR; and
FAR_OSR, the part of OSR that lies more than :data:`FAR_MM` from the truth.

Masks are boolean arrays in the bundle's ``(z, y, x)`` order; ``spacing`` is in millimetres in ITK's
``(x, y, z)`` order (as in :class:`bundle.data.case.Case`), so distances are in mm on anisotropic scans.

Empty masks (a scan without scar), by definition here:

- both empty: DSC = JI = NMI = 1, ASD = HD95 = 0, OSR = USR = 0 (a perfect "nothing");
- one empty: DSC = JI = NMI = 0 and ASD = HD95 = NaN (no surface to measure from);
- ground truth empty: OSR = USR = FAR_OSR = NaN (all divide by TP + FN = 0); prediction empty: USR = 1,
  OSR = FAR_OSR = 0.

NaN values are left out of means by the summaries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
from scipy import ndimage

from bundle.preprocessing.roi import mask_box

METRICS = ("dsc", "jaccard", "asd_mm", "hd95_mm", "nmi", "osr", "usr", "far_osr")
"""Metric keys of :func:`segmentation_metrics`: the paper's tables' order, then ``far_osr``."""

FAR_MM = 3.0
"""``far_osr`` counts the false positives further than this from the truth: beyond the 2.5 mm LA wall, so what is
left of OSR (``osr - far_osr``) is the boundary drawn a little out, and ``far_osr`` is another structure taken in
(veins past the manual cut, a neighbouring chamber, a structure elsewhere)."""

CAVITY_METRICS = ("dsc", "jaccard", "hd95_mm", "asd_mm", "hd95_vox", "asd_vox")
"""Metric keys of :func:`cavity_metrics`: the 2018 Atrial Segmentation Challenge's (Dice, Jaccard, 95 % Hausdorff
and average surface distance), the distances in mm and in voxels."""


def confusion(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) voxel counts of two boolean masks of the same shape."""
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {truth.shape}")
    pred, truth = pred.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    return tp, fp, fn, pred.size - tp - fp - fn


def _entropy(counts: Sequence[int]) -> float:
    total = float(sum(counts))
    return -sum(c / total * math.log(c / total) for c in counts if c > 0)


def normalized_mutual_information(tp: int, fp: int, fn: int, tn: int) -> float:
    """NMI = 2 MI(P, G) / (H(P) + H(G)) of two binary masks from their confusion counts (Taha & Hanbury 2015).

    1 for identical masks (including two constant ones), 0 for independent ones.
    """
    h_pred, h_truth = _entropy([tp + fp, fn + tn]), _entropy([tp + fn, fp + tn])
    if h_pred + h_truth == 0:
        return 1.0 if fp + fn == 0 else 0.0
    mutual = h_pred + h_truth - _entropy([tp, fp, fn, tn])
    return max(0.0, 2 * mutual / (h_pred + h_truth))


def _surface_distances(pred: np.ndarray, truth: np.ndarray, spacing_xyz: Sequence[float]) -> tuple[float, float]:
    """(symmetric average surface distance, symmetric 95 % Hausdorff distance) in mm, via monai.metrics."""
    spacing_zyx = [float(s) for s in reversed(spacing_xyz)][-pred.ndim :]
    p = torch.as_tensor(pred, dtype=torch.float32)[None, None]
    t = torch.as_tensor(truth, dtype=torch.float32)[None, None]
    asd = compute_average_surface_distance(p, t, include_background=True, symmetric=True, spacing=spacing_zyx)
    hd95 = compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=spacing_zyx)
    return float(asd.item()), float(hd95.item())


def far_false_positives(pred: np.ndarray, truth: np.ndarray, spacing_xyz: Sequence[float],
                        far_mm: float = FAR_MM) -> int:
    """The number of ``pred`` voxels more than ``far_mm`` from every ``truth`` voxel (centre to centre, in mm).

    The distance transform runs on the box of the false positives grown by ``far_mm``: truth outside it is further
    than that from every false positive, so it cannot change the count, and a whole scan costs only that box.
    """
    found = mask_box(pred & ~truth)
    if found is None:
        return 0
    spacing_zyx = [float(s) for s in reversed(spacing_xyz)][-pred.ndim :]
    box = tuple(slice(max(0, a - math.ceil(far_mm / s) - 1), min(n, b + math.ceil(far_mm / s) + 1))
                for a, b, s, n in zip(*found, spacing_zyx, pred.shape, strict=True))
    false_positive, near = pred[box] & ~truth[box], truth[box]
    if not near.any():
        return int(false_positive.sum())
    distance = ndimage.distance_transform_edt(~near, sampling=spacing_zyx)
    return int((false_positive & (distance > far_mm)).sum())


def segmentation_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """DSC, Jaccard, ASD (mm, symmetric), HD95 (mm), NMI, OSR = FP/(TP+FN), USR = FN/(TP+FN) of one mask pair, and
    FAR_OSR = (FP further than :data:`FAR_MM` from the truth)/(TP+FN).

    ``spacing`` is (x, y, z) in mm for (z, y, x) arrays (or (x, y) for 2D (y, x) arrays).
    """
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    tp, fp, fn, tn = confusion(pred, truth)
    n_pred, n_truth = tp + fp, tp + fn
    if n_pred == 0 and n_truth == 0:
        return {"dsc": 1.0, "jaccard": 1.0, "asd_mm": 0.0, "hd95_mm": 0.0, "nmi": 1.0, "osr": 0.0, "usr": 0.0,
                "far_osr": 0.0}
    out = {
        "dsc": 2 * tp / (n_pred + n_truth),
        "jaccard": tp / (tp + fp + fn),
        "asd_mm": math.nan,
        "hd95_mm": math.nan,
        "nmi": normalized_mutual_information(tp, fp, fn, tn),
        "osr": fp / n_truth if n_truth else math.nan,
        "usr": fn / n_truth if n_truth else math.nan,
        "far_osr": far_false_positives(pred, truth, spacing) / n_truth if n_truth else math.nan,
    }
    if n_pred and n_truth:
        out["asd_mm"], out["hd95_mm"] = _surface_distances(pred, truth, spacing)
    return out


def cavity_metrics(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Dice, Jaccard, HD95 and ASD (mm and voxels) of an LA cavity mask pair, as the 2018 challenge scores them.

    The voxel distances are the same surface distances on a grid of unit spacing. Empty masks: as
    :func:`segmentation_metrics` (both empty: a perfect nothing; one empty: Dice 0, distances NaN).
    """
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    out = segmentation_metrics(pred, truth, spacing)
    asd_vox, hd95_vox = (_surface_distances(pred, truth, (1.0,) * pred.ndim) if pred.any() and truth.any()
                         else (out["asd_mm"], out["hd95_mm"]))  # both empty: 0; one empty: NaN
    out.update(asd_vox=asd_vox, hd95_vox=hd95_vox)
    return {m: out[m] for m in CAVITY_METRICS}
