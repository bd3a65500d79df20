"""The experiment planner: fingerprint a dataset once, derive the training decisions, split it.

``make_plan`` returns the plan as plain data (JSON): the fingerprint, the patient-level split and
the decisions, each ``{"value", "rule", "reason", "inputs"}`` where ``rule`` names the constants of
:mod:`bundle.planning.rules` and the formula, ``reason`` says why in words and ``inputs`` holds
the fingerprint numbers the formula used. ``save_plan`` / ``load_plan`` write and read plan files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle.atomic import atomic_write_text
from bundle.data.case import Case
from bundle.errors import DatasetError
from bundle.ownership import check_replaceable_file, json_file_with
from bundle.planning import rules as R
from bundle.planning.fingerprint import fingerprint_dataset
from bundle.planning.split import split_patients

PLAN_VERSION = 2
"""2: the stage-1 localiser and the ROI (whole scans); a version-1 plan (crops only) must be re-planned."""
PLAN_CREATOR = "bundle.planning"
"""A plan's ``created_by``: how :func:`save_plan` recognises a plan file it may replace."""
PLAN_KEYS = (
    "name", "version", "created_by", "dataset", "label_protocol", "profile", "decisions", "split", "fingerprint"
)
DECISION_KEYS = (
    "target_spacing", "patch_size", "batch_size", "normalization", "network", "resampling", "localizer", "roi"
)
_TOL = 1e-6


def _round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def _ceil_decimals(x: float, decimals: int) -> float:
    f = 10**decimals
    return math.ceil(x * f - _TOL) / f


def _decision(value, rule: str, reason: str, **inputs) -> dict:
    return {"value": value, "rule": rule, "reason": reason, "inputs": inputs}


def _profile_settings(profile: str) -> dict:
    if profile not in R.PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(R.PROFILES)}")
    return R.PROFILES[profile]


@dataclass(frozen=True)
class _InPlane:
    """What the spacing and patch decisions share: the field stage 2 must see and the grid it is seen on."""

    median_xy: list[float]
    extent_p: float
    needed_mm: float
    fov_xy: list[float]
    field: list[float]
    target: list[float]
    coarsened: bool
    pixels: list[int]
    max_patch: int


def _in_plane(fingerprint: dict, profile: str) -> _InPlane:
    """The in-plane field stage 2 needs (the p-th percentile LA extent plus margins, capped to the median field of
    view) and the target spacing that fits it into the profile's largest patch."""
    prof = _profile_settings(profile)
    cases = fingerprint["cases"]
    with_la = [c for c in cases if c["la_voxels"]]
    if not with_la:
        raise ValueError("no scan has LA voxels: the patch size cannot be derived from the LA extent")
    max_patch = int(prof["max_patch"])
    spacing = np.asarray([c["spacing"] for c in cases], dtype=np.float64)
    median_xy = [
        round(float(np.percentile(spacing[:, i], R.TARGET_SPACING_PERCENTILE)), R.SPACING_DECIMALS) for i in (0, 1)
    ]
    extent_p = float(np.percentile([c["la_extent_in_plane_mm"] for c in with_la], R.PATCH_EXTENT_PERCENTILE))
    needed_mm = extent_p + 2 * R.PATCH_MARGIN_MM
    fov_xy = [float(v) for v in fingerprint["summary"]["field_of_view_mm"]["median"][:2]]
    field = [min(needed_mm, f) if R.PATCH_CAP_TO_IMAGE else needed_mm for f in fov_xy]
    target, coarsened = [], False
    for med, f in zip(median_xy, field):
        if prof.get("coarsen_spacing", True) and f / med > max_patch + _TOL:
            target.append(_ceil_decimals(f / max_patch, R.SPACING_DECIMALS))
            coarsened = True
        else:
            target.append(med)
    pixels = [int(math.ceil(f / s - _TOL)) for f, s in zip(field, target)]
    return _InPlane(median_xy, extent_p, needed_mm, fov_xy, field, target, coarsened, pixels, max_patch)


def decide_spacing(fingerprint: dict, profile: str = R.DEFAULT_PROFILE) -> dict:
    """Stage 2's in-plane target spacing (rules ``TARGET_SPACING_PERCENTILE``, ``RESAMPLE_Z``, the profile's
    ``max_patch``): the median spacing, coarsened only when the LA's field would not fit the largest patch."""
    g = _in_plane(fingerprint, profile)
    rule = (
        f"TARGET_SPACING_PERCENTILE={R.TARGET_SPACING_PERCENTILE:g}: (x, y) = percentile of the scans' spacings; "
        f"RESAMPLE_Z={R.RESAMPLE_Z}: z kept per scan; then max(that, min(needed_mm, median FOV) / max_patch) "
        f"with needed_mm = p{R.PATCH_EXTENT_PERCENTILE:g}(LA in-plane extent) + 2 * PATCH_MARGIN_MM, "
        f"max_patch = {g.max_patch} (profile {profile!r}; only if the profile coarsens)"
    )
    if g.coarsened:
        reason = (
            f"The median in-plane spacing {g.median_xy} mm would need more than {g.max_patch} px for the "
            f"{g.needed_mm:.1f} mm LA + margin, so the spacing is coarsened to {g.target} mm; z is never "
            "resampled because the networks are 2D axial."
        )
    else:
        reason = (
            f"The median in-plane spacing {g.target} mm keeps most scans at their native resolution; z is "
            "never resampled because the networks are 2D axial."
        )
    return _decision(g.target, rule, reason, median_spacing_xy=g.median_xy, needed_field_mm=g.needed_mm,
                     median_field_of_view_mm=g.fov_xy, max_patch=g.max_patch, coarsened=g.coarsened)


def decide_patch(fingerprint: dict, profile: str = R.DEFAULT_PROFILE) -> dict:
    """Stage 2's 2D patch [H, W] (rules ``PATCH_*``, ``NETWORK_DOWNSAMPLING``, ``MIN_PATCH``): the LA's field on the
    target grid, rounded up to the network's down-sampling and clamped to the profile's largest patch."""
    g = _in_plane(fingerprint, profile)
    side = [min(max(_round_up(p, R.NETWORK_DOWNSAMPLING), R.MIN_PATCH), g.max_patch) for p in g.pixels]
    capped = any(f < g.needed_mm for f in g.field)
    cropped = any(p > g.max_patch for p in g.pixels)
    reason = (
        f"The p{R.PATCH_EXTENT_PERCENTILE:g} LA in-plane extent is {g.extent_p:.1f} mm; with {R.PATCH_MARGIN_MM:g} mm "
        f"of context per side it needs {g.needed_mm:.1f} mm = {g.pixels} px (x, y) at {g.target} mm, rounded up to "
        f"a multiple of {R.NETWORK_DOWNSAMPLING} so every pooling divides evenly."
    )
    if cropped:
        reason += (
            f" Profile {profile!r} keeps the native spacing and caps the patch at {g.max_patch} px: training "
            "patches are centred on LA or scar pixels and inference slides a window over whole slices, so "
            "the largest LA need not fit in one patch."
        )
    if capped and not cropped:
        reason += f" The images are narrower ({g.fov_xy} mm), so the patch covers the whole field of view."
    return _decision(
        [side[1], side[0]],  # [H, W] = [y, x]
        f"ceil((p{R.PATCH_EXTENT_PERCENTILE:g} of per-scan max(LA extent x, y) "
        f"+ 2 * PATCH_MARGIN_MM={R.PATCH_MARGIN_MM:g}) "
        f"/ target_spacing) rounded up to NETWORK_DOWNSAMPLING={R.NETWORK_DOWNSAMPLING}, clamped to "
        f"[MIN_PATCH={R.MIN_PATCH}, max_patch={g.max_patch}]; [H, W] = [y, x]",
        reason,
        la_extent_in_plane_percentile_mm=g.extent_p,
        margin_mm=R.PATCH_MARGIN_MM,
        needed_field_mm=g.needed_mm,
        needed_pixels_xy=g.pixels,
        capped_to_image=capped,
    )


def decide_batch(patch: Sequence[int], profile: str = R.DEFAULT_PROFILE) -> dict:
    """Stage 2's batch size (rules ``REFERENCE_*``, ``MIN_BATCH``, the profile's ``max_batch``): the paper's batch
    x pixels kept about constant for ``patch`` [H, W]."""
    prof = _profile_settings(profile)
    ref_pixels = R.REFERENCE_PATCH[0] * R.REFERENCE_PATCH[1]
    raw_batch = R.REFERENCE_BATCH * ref_pixels / (patch[0] * patch[1])
    max_batch = int(prof["max_batch"])
    batch = min(max(int(math.floor(raw_batch + 0.5)), R.MIN_BATCH), max_batch)
    return _decision(
        batch,
        f"round(REFERENCE_BATCH={R.REFERENCE_BATCH} * {R.REFERENCE_PATCH[0]}*{R.REFERENCE_PATCH[1]} / (H * W)) "
        f"clamped to [MIN_BATCH={R.MIN_BATCH}, max_batch={max_batch}]",
        f"The paper trains {R.REFERENCE_PATCH[0]}x{R.REFERENCE_PATCH[1]} patches in batches of {R.REFERENCE_BATCH}; "
        f"keeping batch x pixels about constant gives {raw_batch:.2f} for {patch[0]}x{patch[1]}"
        + (f", capped at {max_batch} for the {profile!r} profile." if raw_batch > max_batch + 0.5 else "."),
        unclamped=raw_batch,
        max_batch=max_batch,
    )


def decide_network(patch: Sequence[int], profile: str = R.DEFAULT_PROFILE) -> dict:
    """Gl's poolings and widths, Gs's width and Ga's ConvLSTM kernels for ``patch`` (rules ``MAX_POOLINGS``,
    ``MIN_FEATURE_MAP``, the profile's widths)."""
    prof = _profile_settings(profile)
    poolings, size = 0, min(patch)
    while poolings < R.MAX_POOLINGS and size // 2 >= R.MIN_FEATURE_MAP:
        size //= 2
        poolings += 1
    base, cap = int(prof["base_width"]), int(prof["max_width"])
    widths = [min(base * 2**i, cap) for i in range(poolings + 1)]
    return _decision(
        {"gl_widths": widths, "gl_poolings": poolings, "gs_width": int(prof["gs_width"]),
         "lstm_channels": int(prof["lstm_channels"])},
        f"Gl: poolings = as many as MAX_POOLINGS={R.MAX_POOLINGS} allow while the smallest feature map stays >= "
        f"MIN_FEATURE_MAP={R.MIN_FEATURE_MAP} px; widths = min(base_width * 2**level, max_width) with "
        f"base_width={base}, max_width={cap}; Gs width = {int(prof['gs_width'])}, Ga ConvLSTM kernels = "
        f"{int(prof['lstm_channels'])} (profile {profile!r})",
        f"A {patch[0]}x{patch[1]} patch pools {poolings} times down to {size} px; "
        + (
            "the paper's widths."
            if profile == R.DEFAULT_PROFILE
            else f"the {profile!r} profile narrows the networks: {prof['description']}."
        ),
        bottleneck_px=size,
        profile=profile,
    )


def decide_normalization(fingerprint: dict) -> dict:
    """Per-volume z-scoring (rules ``NORMALIZATION_*``, ``CLIP_*``), with the dataset's LA intensities recorded."""
    summary = fingerprint["summary"]
    la_z = summary.get("la_intensity_zscore") or {}
    lo_key, hi_key = (f"p{p:g}" for p in R.CLIP_PERCENTILES)
    return _decision(
        {
            "scheme": R.NORMALIZATION_SCHEME,
            "mask": "whole_volume",
            "epsilon": R.NORMALIZATION_EPSILON,
            "clip": R.CLIP_BY_DEFAULT,
            "clip_percentiles": list(R.CLIP_PERCENTILES),
            "clip_bounds_zscore": [la_z.get(lo_key), la_z.get(hi_key)],
            "dataset_la_intensity": summary.get("la_intensity"),
            "dataset_la_intensity_zscore": la_z or None,
        },
        f"NORMALIZATION_SCHEME={R.NORMALIZATION_SCHEME!r}: (image - mean(volume)) / (std(volume) + "
        f"NORMALIZATION_EPSILON); optional clip to CLIP_PERCENTILES={list(R.CLIP_PERCENTILES)} of pooled z-scored "
        f"LA intensities, CLIP_BY_DEFAULT={R.CLIP_BY_DEFAULT}",
        "JAS-GAN normalises each whole 3D volume and nnU-Net z-scores MRI per image, because LGE intensities "
        "differ between scanners; the dataset's LA intensities are recorded for reference and clipping is off "
        "so the bright scar tail is kept.",
    )


def decide_resampling(fingerprint: dict, target: Sequence[float]) -> dict:
    """How scans are resampled in-plane to ``target`` (rules ``IMAGE_INTERPOLATION``, ``LABEL_INTERPOLATION``)."""
    return _decision(
        {"image": R.IMAGE_INTERPOLATION, "label": R.LABEL_INTERPOLATION, "z": "none"},
        "IMAGE_INTERPOLATION / LABEL_INTERPOLATION in-plane to target_spacing; RESAMPLE_Z=False",
        "Linear interpolation cannot overshoot the scar's bright voxels; labels stay integer with nearest "
        "neighbour; slices are kept as acquired for the 2D axial networks.",
        n_scans_at_target=int(sum(1 for c in fingerprint["cases"] if np.allclose(c["spacing"][:2], target, atol=1e-4))),
    )


def _rad(degrees: float) -> float:
    return round(math.radians(degrees), 6)


def _pair(lo: float, hi: float) -> list[float]:
    return [round(float(lo), 6), round(float(hi), 6)]


def nnunet_rotation_2d_deg(patch: Sequence[int]) -> float:
    """nnU-Net's rotation range (degrees) for a 2D ``patch``: +-180, or +-15 for a patch more elongated than
    ``AUG_ELONGATED_PATCH_RATIO`` (``configure_rotation_dummyDA_mirroring_and_inital_patch_size``)."""
    elongated = max(patch) / min(patch) > R.AUG_ELONGATED_PATCH_RATIO
    return R.AUG_ROTATION_2D_ELONGATED_DEG if elongated else R.AUG_ROTATION_2D_DEG


def is_dummy_2d(patch_zyx: Sequence[int]) -> bool:
    """Whether nnU-Net augments a 3D ``patch_zyx`` slice by slice ("dummy 2D"): its largest side is more than
    ``AUG_ANISOTROPY_THRESHOLD`` times its first (through-plane) side."""
    return max(patch_zyx) / patch_zyx[0] > R.AUG_ANISOTROPY_THRESHOLD


def _scaling() -> dict:
    """nnU-Net's isotropic scaling as RandZoomd's zoom, the inverse of nnU-Net's grid scale (``AUG_SCALING_*``)."""
    return {"prob": R.AUG_SCALING_PROB, "zoom_range": _pair(1 / R.AUG_SCALING_RANGE[1], 1 / R.AUG_SCALING_RANGE[0])}


def _low_res_prob(dummy_2d: bool = False) -> float:
    """nnU-Net's chance of simulated low resolution for one channel; 0 under dummy 2D (``AUG_LOW_RES_*``)."""
    return 0.0 if dummy_2d else round(R.AUG_LOW_RES_PROB * R.AUG_LOW_RES_P_PER_CHANNEL, 6)


def _intensity_augmentation(low_res_prob: float) -> dict:
    """nnU-Net's intensity augmentation as MONAI parameters (rules ``AUG_NOISE_*`` ... ``AUG_GAMMA_*``)."""
    gamma = _pair(*R.AUG_GAMMA_RANGE)
    return {
        "noise": {"prob": R.AUG_NOISE_PROB, "std": R.AUG_NOISE_STD_RANGE[1]},
        "blur": {"prob": round(R.AUG_BLUR_PROB * R.AUG_BLUR_P_PER_CHANNEL, 6),
                 "sigma_range": _pair(*R.AUG_BLUR_SIGMA_RANGE)},
        "brightness": {"prob": R.AUG_BRIGHTNESS_PROB, "factors": _pair(*(m - 1 for m in R.AUG_BRIGHTNESS_RANGE))},
        "contrast": {"prob": R.AUG_CONTRAST_PROB, "factors": _pair(*(m - 1 for m in R.AUG_CONTRAST_RANGE))},
        "low_resolution": {"prob": low_res_prob, "zoom_range": _pair(*R.AUG_LOW_RES_ZOOM_RANGE)},
        "inverted_gamma": {"prob": R.AUG_INVERTED_GAMMA_PROB, "gamma": gamma},
        "gamma": {"prob": R.AUG_GAMMA_PROB, "gamma": gamma},
    }


def _stage2_augmentation(patch: Sequence[int]) -> dict:
    """Stage 2 (2D patches [H, W]): nnU-Net's 2D rules, rotation capped by ``AUG_ORIENTED_MAX_ROTATION_DEG``."""
    sigma = sum(R.AUG_ELASTIC_SIGMA_RANGE) / 2
    field_std = R.AUG_ELASTIC_ALPHA_2D[1] / (math.sqrt(3) * 2 * math.sqrt(math.pi) * sigma)
    return {
        "spatial_dims": 2,
        "rotation": {"prob": R.AUG_ROTATION_PROB,
                     "in_plane_rad": _rad(min(nnunet_rotation_2d_deg(patch), R.AUG_ORIENTED_MAX_ROTATION_DEG))},
        "scaling": _scaling(),
        "elastic": {"prob": R.AUG_ELASTIC_PROB, "spacing_px": round(2 * sigma, 6),
                    "magnitude_range_px": _pair(0.0, field_std)},
        **_intensity_augmentation(_low_res_prob()),
        "mirror": {"prob": R.AUG_MIRROR_PROB, "axes": [0, 1] if R.AUG_MIRROR else []},
    }


def _stage1_augmentation(patch_zyx: Sequence[int]) -> dict:
    """Stage 1 (3D patches (z, y, x)): nnU-Net's 3D rules with its dummy-2D case, rotation capped by
    ``AUG_ORIENTED_MAX_ROTATION_DEG``; no low-resolution simulation under dummy 2D (``AUG_LOW_RES_ZOOM_RANGE``)."""
    dummy = is_dummy_2d(patch_zyx)
    in_plane = R.AUG_ROTATION_DUMMY_2D_DEG if dummy else R.AUG_ROTATION_3D_DEG
    out_of_plane = 0.0 if dummy else R.AUG_ROTATION_3D_DEG
    return {
        "spatial_dims": 3,
        "dummy_2d": dummy,
        "rotation": {"prob": R.AUG_ROTATION_PROB,
                     "in_plane_rad": _rad(min(in_plane, R.AUG_ORIENTED_MAX_ROTATION_DEG)),
                     "out_of_plane_rad": _rad(min(out_of_plane, R.AUG_ORIENTED_MAX_ROTATION_DEG))},
        "scaling": _scaling(),
        "elastic": {"prob": R.AUG_ELASTIC_PROB, "sigma_range": _pair(*R.AUG_ELASTIC_SIGMA_RANGE),
                    "magnitude_range": _pair(*R.AUG_ELASTIC_ALPHA_3D)},
        **_intensity_augmentation(_low_res_prob(dummy)),
        "mirror": {"prob": R.AUG_MIRROR_PROB, "axes": [0, 1, 2] if R.AUG_MIRROR else []},
    }


def decide_augmentation(patch: Sequence[int], localizer_patch: Sequence[int]) -> dict:
    """Training augmentation of stage 2 (2D ``patch`` [H, W]) and stage 1 (3D ``localizer_patch`` (z, y, x)):
    nnU-Net v2's defaults (``nnUNetTrainer.get_training_transforms``) as MONAI parameters (rules ``AUG_*``)."""
    stage2, stage1 = _stage2_augmentation(patch), _stage1_augmentation(localizer_patch)
    nn2d = nnunet_rotation_2d_deg(patch)
    nn3d = R.AUG_ROTATION_DUMMY_2D_DEG if stage1["dummy_2d"] else R.AUG_ROTATION_3D_DEG
    elastic = f"elastic deformation (p {R.AUG_ELASTIC_PROB:g})" if R.AUG_ELASTIC_PROB else "no elastic deformation"
    mirror = (f"flipped along every axis (p {R.AUG_MIRROR_PROB:g} each)" if R.AUG_MIRROR
              else "nothing is mirrored: the LA's side is anatomy here")
    reason = (
        f"nnU-Net's defaults: rotation (p {R.AUG_ROTATION_PROB:g}) and isotropic scaling by "
        f"{list(R.AUG_SCALING_RANGE)} (p {R.AUG_SCALING_PROB:g}), {elastic}, Gaussian noise, blur, brightness, "
        "contrast, low resolution, gamma of the inverted and of the plain image, in its order, on the normalised "
        "patch. nnU-Net would rotate the "
        f"{patch[0]}x{patch[1]} stage-2 patch by +-{nn2d:g} degrees and the {list(localizer_patch)} stage-1 patch by "
        f"+-{nn3d:g} degrees " + ("in-plane only (dummy 2D: anisotropic patch)" if stage1["dummy_2d"] else
                                  "about every axis")
        + f"; every scan is turned to the plan's orientation, so rotations stay within "
        f"+-{R.AUG_ORIENTED_MAX_ROTATION_DEG:g} degrees and {mirror}."
    )
    if stage1["dummy_2d"]:
        reason += " The stage-1 patch is anisotropic: no low resolution is simulated (MONAI would coarsen z too)."
    return _decision(
        {"stage2": stage2, "stage1": stage1},
        "nnU-Net v2 nnUNetTrainer.get_training_transforms as MONAI parameters: AUG_ROTATION_PROB, rotation = "
        f"min(nnU-Net's range, AUG_ORIENTED_MAX_ROTATION_DEG={R.AUG_ORIENTED_MAX_ROTATION_DEG:g}) in radians with "
        f"nnU-Net's range = AUG_ROTATION_2D_DEG={R.AUG_ROTATION_2D_DEG:g} (AUG_ROTATION_2D_ELONGATED_DEG="
        f"{R.AUG_ROTATION_2D_ELONGATED_DEG:g} when max(patch) / min(patch) > AUG_ELONGATED_PATCH_RATIO="
        f"{R.AUG_ELONGATED_PATCH_RATIO:g}) in 2D, AUG_ROTATION_3D_DEG={R.AUG_ROTATION_3D_DEG:g} about every axis in 3D "
        f"or AUG_ROTATION_DUMMY_2D_DEG={R.AUG_ROTATION_DUMMY_2D_DEG:g} in-plane only when max(patch) / patch[0] > "
        f"AUG_ANISOTROPY_THRESHOLD={R.AUG_ANISOTROPY_THRESHOLD:g}; zoom = 1 / AUG_SCALING_RANGE; AUG_ELASTIC_* (v1's "
        "sigma and alpha); prob = AUG_*_PROB (x AUG_*_P_PER_CHANNEL for blur and low resolution, the latter 0 under "
        f"dummy 2D); factors = AUG_BRIGHTNESS_RANGE / AUG_CONTRAST_RANGE - 1; mirror axes: every axis if AUG_MIRROR "
        f"(={R.AUG_MIRROR}) else none, AUG_MIRROR_PROB each",
        reason,
        patch_size=list(patch),
        localizer_patch_size=list(localizer_patch),
        nnunet_rotation_deg={"stage2": nn2d, "stage1": nn3d},
    )


def plan_decisions(fingerprint: dict, profile: str = R.DEFAULT_PROFILE) -> dict:
    """The decisions for a dataset fingerprint (from ``fingerprint_dataset``) and a profile, one function each."""
    _profile_settings(profile)
    decisions = {"target_spacing": decide_spacing(fingerprint, profile),
                 "patch_size": decide_patch(fingerprint, profile)}
    patch = decisions["patch_size"]["value"]
    decisions["batch_size"] = decide_batch(patch, profile)
    decisions["network"] = decide_network(patch, profile)
    decisions["normalization"] = decide_normalization(fingerprint)
    decisions["localizer"] = decide_localizer(fingerprint, profile)
    decisions["roi"] = decide_roi(fingerprint, decisions)
    decisions["resampling"] = decide_resampling(fingerprint, decisions["target_spacing"]["value"])
    decisions["augmentation"] = decide_augmentation(patch, decisions["localizer"]["value"]["patch_size"])
    return decisions


def coarse_shape(shape_zyx: Sequence[int], spacing_xyz: Sequence[float], target_xyz: Sequence[float]) -> tuple:
    """Size (z, y, x) of the same field of view on the ``target_xyz`` grid (rounded, at least 1)."""
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(shape_zyx, tuple(spacing_xyz)[::-1],
                                                             tuple(target_xyz)[::-1]))


def is_crop(shape_zyx: Sequence[int], spacing_xyz: Sequence[float], crop_fov_mm: float) -> bool:
    """Whether a scan is already a crop around the LA: narrower than ``crop_fov_mm`` along x and along y."""
    return shape_zyx[2] * spacing_xyz[0] < crop_fov_mm and shape_zyx[1] * spacing_xyz[1] < crop_fov_mm


def _roi_margin_mm(coarse_mm: float) -> float:
    """The margin stage 1's LA box gets on every side (rules ``ROI_MARGIN_VOXELS``, ``ROI_MIN_MARGIN_MM``)."""
    return round(max(R.ROI_MIN_MARGIN_MM, R.ROI_MARGIN_VOXELS * coarse_mm), 2)


def _la_extent_in_plane_mm(fingerprint: dict) -> float:
    """The p``PATCH_EXTENT_PERCENTILE`` in-plane extent of the fingerprint's LAs (mm)."""
    with_la = [c for c in fingerprint["cases"] if c["la_voxels"]]
    return float(np.percentile([c["la_extent_in_plane_mm"] for c in with_la], R.PATCH_EXTENT_PERCENTILE))


def _crop_fov_mm(fingerprint: dict, coarse_mm: float) -> float:
    """Scans narrower than this along x and y are crops around the LA: stage 1 skips them (``CROP_FOV_FACTOR``)."""
    return round(R.CROP_FOV_FACTOR * (_la_extent_in_plane_mm(fingerprint) + 2 * _roi_margin_mm(coarse_mm)), 2)


def decide_localizer(fingerprint: dict, profile: str = R.DEFAULT_PROFILE) -> dict:
    """Stage 1: the coarse grid, patch and 3D U-Net of the LA localiser (rules ``LOCALIZER_*``).

    The patch is sized on the scans stage 1 runs on, the whole fields of view (crops skip it, :func:`is_crop`): in a
    dataset of mostly crops the median scan is a crop, and a localiser trained on crop-sized patches of whole scans
    sees too little of the chest to tell the LA from the other blood pools. A dataset of crops only sizes it on all.
    """
    prof = _profile_settings(profile)
    cases = [c for c in fingerprint["cases"] if c["la_voxels"]]
    smallest = float(np.percentile([min(c["la_extent_mm"]) for c in cases], 50))
    target = _ceil_decimals(smallest / R.LOCALIZER_LA_VOXELS, R.LOCALIZER_SPACING_DECIMALS)
    native = np.median(np.asarray([c["spacing"] for c in fingerprint["cases"]], dtype=np.float64), axis=0)
    spacing = [max(float(n), target) for n in native]  # (x, y, z)
    crop_fov = _crop_fov_mm(fingerprint, max(spacing))
    whole = [c for c in fingerprint["cases"] if not is_crop(c["shape"][::-1], c["spacing"], crop_fov)]
    sized = whole or fingerprint["cases"]
    coarse = np.asarray([coarse_shape(c["shape"][::-1], c["spacing"], spacing)[::-1] for c in sized],
                        dtype=np.float64)  # (x, y, z) per scan
    median = [float(v) for v in np.percentile(coarse, R.LOCALIZER_PATCH_PERCENTILE, axis=0)]
    poolings = 0
    while poolings < R.LOCALIZER_MAX_POOLINGS and min(median) / 2 ** (poolings + 1) >= R.LOCALIZER_MIN_FEATURE_MAP:
        poolings += 1
    multiple = 2**poolings
    patch = [_round_up(int(math.ceil(v - _TOL)), multiple) for v in median[::-1]]  # (z, y, x)
    base, cap = int(prof["localizer_base_width"]), int(prof["localizer_max_width"])
    widths = [min(base * 2**i, cap) for i in range(poolings + 1)]
    return _decision(
        {"spacing": spacing, "patch_size": patch, "widths": widths, "strides": [2] * poolings,
         "downsampling": multiple},
        f"spacing (x, y, z) = max(median scan spacing, ceil(p50(min(LA extent x, y, z)) / LOCALIZER_LA_VOXELS="
        f"{R.LOCALIZER_LA_VOXELS}, {R.LOCALIZER_SPACING_DECIMALS} decimals)); patch (z, y, x) = "
        f"p{R.LOCALIZER_PATCH_PERCENTILE:g} of the whole scans' sizes (those not narrower than the ROI rule's "
        f"crop_fov_mm; all scans if every one is) on that grid rounded up to 2**poolings, with poolings "
        f"as many as LOCALIZER_MAX_POOLINGS={R.LOCALIZER_MAX_POOLINGS} allow while the smallest feature map keeps "
        f">= LOCALIZER_MIN_FEATURE_MAP={R.LOCALIZER_MIN_FEATURE_MAP} voxels; widths = min(localizer_base_width * "
        f"2**level, localizer_max_width) = ({base}, {cap}) for profile {profile!r}",
        f"The LA's smallest extent has a median of {smallest:.1f} mm, so a {target:g} mm grid spans it with "
        f"{R.LOCALIZER_LA_VOXELS} voxels; a median "
        + (f"whole scan ({len(whole)} of {len(fingerprint['cases'])} scans are not crops)" if whole else
           "scan (all are crops)")
        + f" is then {[round(v) for v in median[::-1]]} voxels (z, y, x), "
        f"seen whole by a 3D U-Net with {poolings} poolings: 3D context tells the LA from the other blood pools.",
        smallest_la_extent_p50_mm=smallest,
        median_spacing=[float(v) for v in native],
        median_coarse_shape_zyx=median[::-1],
        whole_scans=len(whole),
    )


def decide_roi(fingerprint: dict, decisions: dict) -> dict:
    """The region stage 2 segments: stage 1's LA box plus a margin, snapped to Gl's down-sampling (``ROI_*``)."""
    localizer = decisions["localizer"]["value"]
    coarse = max(localizer["spacing"])
    margin = _roi_margin_mm(coarse)
    multiple = 2 ** int(decisions["network"]["value"]["gl_poolings"])
    extent = _la_extent_in_plane_mm(fingerprint)
    crop_fov = _crop_fov_mm(fingerprint, coarse)
    return _decision(
        {"margin_mm": margin, "multiple": multiple, "crop_fov_mm": crop_fov},
        f"margin = max(ROI_MIN_MARGIN_MM={R.ROI_MIN_MARGIN_MM:g}, ROI_MARGIN_VOXELS={R.ROI_MARGIN_VOXELS:g} * "
        f"localiser spacing); the in-plane ROI size is rounded up to a multiple of Gl's down-sampling; scans narrower "
        f"than crop_fov_mm = CROP_FOV_FACTOR={R.CROP_FOV_FACTOR:g} * (p{R.PATCH_EXTENT_PERCENTILE:g} LA in-plane "
        "extent + 2 * margin) along x and y are crops: stage 1 is skipped",
        f"A box found on the {coarse:g} mm grid is off by up to a voxel and thin veins may be missed by one more, "
        f"so {margin:g} mm are added on every side; a size that is a multiple of {multiple} pools evenly in Gl. "
        f"The largest LAs need {extent + 2 * margin:.0f} mm of ROI, so a scan under {crop_fov:.0f} mm wide is already "
        "a crop around the LA.",
        localizer_spacing_mm=coarse,
        la_extent_in_plane_percentile_mm=extent,
    )


def make_plan(
    cases: Iterable[Case],
    name: str,
    dataset: dict,
    label_protocol: dict,
    seed: int = R.SPLIT_SEED,
    n_folds: int = R.N_FOLDS,
    test_fraction: float = R.TEST_FRACTION,
    val_fraction: float = R.VAL_FRACTION,
    profile: str = R.DEFAULT_PROFILE,
) -> dict:
    """Fingerprint ``cases`` (iterated once, no image kept), decide, split; return the plan dict.

    ``dataset`` (e.g. ``{"root": "data/x", "layout": "lascarqs"}``) and ``label_protocol`` are
    copied into the plan as given.
    """
    _profile_settings(profile)  # fail before loading any scan
    fingerprint = fingerprint_dataset(cases)
    decisions = plan_decisions(fingerprint, profile)
    records = [
        {k: c[k] for k in ("scan", "patient", "ablation", "label_sha1", "la_voxels")} for c in fingerprint["cases"]
    ]
    split = split_patients(records, seed=seed, n_folds=n_folds, test_fraction=test_fraction, val_fraction=val_fraction)
    return {
        "name": name,
        "version": PLAN_VERSION,
        "created_by": PLAN_CREATOR,
        "dataset": dataset,
        "label_protocol": label_protocol,
        "profile": profile,
        "decisions": decisions,
        "split": split,
        "fingerprint": fingerprint,
    }


def replan(plan: dict, profile: str, name: str | None = None) -> dict:
    """The plan of the same dataset for another ``profile``, decided from the stored fingerprint (no scan is read,
    as nnU-Net plans from its fingerprint file); the split and the excluded scans stay as they were."""
    _profile_settings(profile)
    new = {k: v for k, v in plan.items() if k != "planning_seconds"}  # plans written before timing left the plan
    new.update(name=name or plan["name"], profile=profile, decisions=plan_decisions(plan["fingerprint"], profile))
    return new


def decision_values(plan: dict) -> dict:
    """``{decision name: value}`` of a plan, for configs that only need the numbers. A plan written before a later
    decision existed gets that decision's default from its other decisions (``augmentation`` from the two patches)."""
    values = {k: d["value"] for k, d in plan["decisions"].items()}
    if "augmentation" not in values:
        values["augmentation"] = decide_augmentation(values["patch_size"], values["localizer"]["patch_size"])["value"]
    return values


def is_plan_file(path: str | Path) -> bool:
    """Whether ``path`` holds a plan this bundle's planner wrote (any version)."""
    return json_file_with(Path(path), lambda d: isinstance(d, dict) and d.get("created_by") == PLAN_CREATOR)


def save_plan(plan: dict, path: str | Path) -> Path:
    """Write a plan as JSON (indent 2, keys in plan order, trailing newline), atomically: a new file, or over a plan
    the planner wrote; any other file is refused (:class:`~bundle.errors.ForeignPathError`)."""
    check_replaceable_file(path, is_plan_file, "plan")
    text = json.dumps(plan, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def load_plan(path: str | Path) -> dict:
    """Read a plan file; a :class:`DatasetError` naming the file if it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "plan file not found (run jasgan-plan to create it)")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DatasetError(path, f"plan is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(path, f"plan cannot be read: {e}") from None
    if not isinstance(plan, dict):
        raise DatasetError(path, f"plan must be a JSON object, got {type(plan).__name__}")
    missing = [k for k in PLAN_KEYS if k not in plan]
    if missing:
        raise DatasetError(path, f"plan lacks keys {missing}")
    if plan["version"] != PLAN_VERSION:
        why = " (it plans crop-only training, without the stage-1 localiser)" if plan["version"] == 1 else ""
        raise DatasetError(path, f"plan version {plan['version']!r} is not supported{why}: expected {PLAN_VERSION}; "
                                 "re-run jasgan-plan on the dataset")
    decisions = plan["decisions"]
    if not isinstance(decisions, dict):
        raise DatasetError(path, "plan 'decisions' must be an object")
    bad = [k for k in DECISION_KEYS if not isinstance(decisions.get(k), dict) or "value" not in decisions[k]]
    if bad:
        raise DatasetError(path, f"plan decisions missing or without a value: {bad}")
    return plan
