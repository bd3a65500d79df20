"""The planner's rules: every number the plan derives from the data fingerprint is set here.

Like nnU-Net v2's experiment planner, the rules are named constants and the plan is data: each
decision in a plan file names the constant(s) and formula that produced its value, so a reader can
trace any number in ``plans/*.json`` back to this module. Change a rule here, re-run the planner,
and the difference shows up in the plan, never hidden in code.

Sizes in pixels are ``[H, W]`` (rows = y, columns = x) at the target spacing; spacings and extents
are in millimetres in ITK's ``(x, y, z)`` order.
"""

from __future__ import annotations

# --------------------------------------------------------------------------------------------
# Fingerprint
# --------------------------------------------------------------------------------------------

FINGERPRINT_SEED = 1234
"""Seed of the voxel sub-sampling in the fingerprint (nnU-Net's value), so fingerprints repeat."""

LA_SAMPLES_PER_CASE = 10_000
"""LA voxels sampled per scan for the pooled dataset LA intensity percentiles (nnU-Net samples
10000 foreground voxels per case). Per-scan LA statistics use every LA voxel."""

IMAGE_SAMPLES_PER_CASE = 100_000
"""Voxels sampled per scan for whole-image percentiles. Mean, std, min and max use every voxel."""

INTENSITY_PERCENTILES = (0.5, 50.0, 99.5)
"""Percentiles reported for intensities (nnU-Net's 0.5 / 50 / 99.5)."""

# --------------------------------------------------------------------------------------------
# Spacing
# --------------------------------------------------------------------------------------------

TARGET_SPACING_PERCENTILE = 50.0
"""Target in-plane spacing = this percentile (the median) of the scans' x and y spacings,
separately per axis (nnU-Net's rule). Most LGE scans share 0.625 mm, so usually nothing is
resampled."""

RESAMPLE_Z = False
"""The networks are 2D axial, so the slice spacing is never resampled: z is kept per scan."""

SPACING_DECIMALS = 6
"""Target spacings are rounded to this many decimals to drop float noise from file headers."""

IMAGE_INTERPOLATION = "linear"
"""In-plane resampling of images (linear: no overshoot, unlike B-splines, on the bright scar)."""

LABEL_INTERPOLATION = "nearest"
"""In-plane resampling of label maps."""

# --------------------------------------------------------------------------------------------
# Patch
# --------------------------------------------------------------------------------------------

PATCH_EXTENT_PERCENTILE = 95.0
"""The patch must hold the LA of this percentile of scans: the percentile, over scans with LA, of
each scan's largest in-plane LA bounding-box side (max of x and y extent, in mm)."""

PATCH_MARGIN_MM = 30.0
"""Context added on each side of the LA extent. It absorbs the error of locating the LA centre at
inference and gives the encoder surrounding anatomy; with a 100 mm LA at 0.625 mm it reproduces the
paper's 256 x 256 patch (100 + 2 * 30 = 160 mm = 256 px)."""

MAX_POOLINGS = 4
"""Poolings of the paper's LA U-Net (Gl): five resolution levels."""

NETWORK_DOWNSAMPLING = 2**MAX_POOLINGS
"""Total downsampling of Gl (16): patch sides are rounded UP to a multiple of it."""

MIN_PATCH = 64
"""Smallest patch side in pixels (a multiple of NETWORK_DOWNSAMPLING)."""

MAX_PATCH = 512
"""Largest patch side in pixels for the paper profile; a profile may lower it (see PROFILES).
When the LA plus margin needs more pixels than this, the target spacing is coarsened instead."""

PATCH_CAP_TO_IMAGE = True
"""The patch never needs to be wider than the image: the needed field of view is capped at the
median in-plane field of view (mm) of the scans before converting it to pixels."""

# --------------------------------------------------------------------------------------------
# Batch
# --------------------------------------------------------------------------------------------

REFERENCE_PATCH = (256, 256)
"""The paper's patch size ..."""

REFERENCE_BATCH = 8
"""... trained with this batch size: batch * patch pixels is kept about constant,
batch = round(REFERENCE_BATCH * 256 * 256 / (H * W))."""

MIN_BATCH = 2
"""Smallest batch (instance statistics and the GAN need more than one sample)."""

MAX_BATCH = 32
"""Largest batch for the paper profile; a profile may lower it (see PROFILES)."""

# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------

BASE_WIDTH = 32
"""Features of Gl's first level; doubled at every pooling (paper: 32 ... 512)."""

MAX_WIDTH = 512
"""Feature cap per level of Gl (nnU-Net caps 2D U-Nets at 512)."""

MIN_FEATURE_MAP = 8
"""Stop pooling when the smallest feature map would go under this many pixels (nnU-Net style), so
small patches get fewer than MAX_POOLINGS poolings."""

GS_WIDTH = 32
"""Features of the scar residual network Gs."""

LSTM_CHANNELS = 32
"""Kernels of the adaptive attention ConvLSTM Ga (the paper: "a convolutional LSTM network with 32 kernels")."""

# --------------------------------------------------------------------------------------------
# Stage 1: the LA localiser (a small 3D U-Net on a coarse copy of the whole scan)
# --------------------------------------------------------------------------------------------

LOCALIZER_LA_VOXELS = 12
"""The localiser's grid spans the LA's median smallest extent (usually its height along z) with this many voxels:
isotropic target spacing = p50(min(LA extent x, y, z)) / LOCALIZER_LA_VOXELS, never finer than the scans' own
spacing along an axis. A box found to one voxel is then off by about 8 % of the LA, which the ROI margin absorbs,
while the whole field of view stays a few hundred thousand voxels: 3D context at a cost set by the field of view."""

LOCALIZER_SPACING_DECIMALS = 2
"""The localiser spacing is rounded up to this many decimals (mm)."""

LOCALIZER_MAX_POOLINGS = 4
"""Most poolings of the localiser's 3D U-Net ..."""

LOCALIZER_MIN_FEATURE_MAP = 3
"""... while its smallest feature map keeps at least this many voxels along every axis of the patch."""

LOCALIZER_PATCH_PERCENTILE = 50.0
"""The localiser trains on patches of the median coarse scan size (z, y, x), rounded up to its down-sampling, so
most scans are seen whole (random shifts) and larger ones in random crops; at inference it sees whole scans."""

# --------------------------------------------------------------------------------------------
# The region of interest handed from stage 1 to stage 2
# --------------------------------------------------------------------------------------------

ROI_MARGIN_VOXELS = 2.5
"""The ROI is the box of stage 1's LA plus a margin of this many localiser voxels on every side ..."""

ROI_MIN_MARGIN_MM = 10.0
"""... and at least this many mm: a box found on the coarse grid is off by up to a voxel, thin pulmonary veins
may be under-segmented by one more, and stage 2 needs some context around the LA wall."""

CROP_FOV_FACTOR = 1.5
"""A scan whose in-plane field of view is under CROP_FOV_FACTOR times the ROI of the planned p95 LA (its in-plane
extent plus both margins) along x and y is taken as a crop around the LA already (such as the CARMA crop): stage 1
is skipped and stage 2 sees the whole scan. Whole scans (300-400 mm) are never that small."""

# --------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------

NORMALIZATION_SCHEME = "zscore_per_volume"
"""Each scan is z-scored with its own mean and std over the whole 3D volume ("data normalization
on the whole 3D volume" in JAS-GAN; nnU-Net's scheme for MRI): LGE intensities are not calibrated
across scanners, so dataset statistics cannot be applied to raw values."""

NORMALIZATION_EPSILON = 1e-8
"""Added to the std when z-scoring, so a constant image does not divide by zero."""

CLIP_PERCENTILES = (0.5, 99.5)
"""Optional clipping after z-scoring at these percentiles of the pooled, per-volume z-scored LA
intensities (nnU-Net clips CT at the same foreground percentiles). Recorded in the plan ..."""

CLIP_BY_DEFAULT = False
"""... but off by default: bright scar is the signal, and clipping would flatten its upper tail."""

# --------------------------------------------------------------------------------------------
# Profiles
# --------------------------------------------------------------------------------------------

PROFILES: dict[str, dict] = {
    "paper": {
        "base_width": BASE_WIDTH,
        "max_width": MAX_WIDTH,
        "gs_width": GS_WIDTH,
        "lstm_channels": LSTM_CHANNELS,
        "max_patch": MAX_PATCH,
        "max_batch": MAX_BATCH,
        "localizer_base_width": 16,
        "localizer_max_width": 128,
        "description": "the paper's networks and patch for a GPU",
    },
    "cpu": {
        "base_width": 16,
        "max_width": 128,
        "gs_width": 16,
        "lstm_channels": 16,
        "max_patch": 128,
        "max_batch": 4,
        "localizer_base_width": 8,
        "localizer_max_width": 64,
        "coarsen_spacing": False,
        "description": "narrow networks and patches of at most 128 px for a 2-core CPU, at the native "
        "spacing (the thin LA wall and its scar need the resolution more than the patch needs context)",
    },
}
"""Settings that differ between machines. ``paper``: the published widths, patch and batch.
``cpu``: a laptop-trainable variant (base width 16, max 128, batch <= 4, patch <= 128 px, native spacing);
on the phantoms, batches of 4 reached a higher validation Dice than batches of 8 for the same number
of patches seen (more, smaller steps in the same CPU time).
``localizer_*``: widths of the stage-1 3D U-Net (a few percent of the run time either way).
``coarsen_spacing`` (default True): coarsen the target spacing when the LA + margin needs more than
``max_patch`` pixels; False keeps the spacing and crops the patch instead."""

DEFAULT_PROFILE = "paper"

# --------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------

SPLIT_RULE = (
    "group scans by patient and merge groups whose scans have byte-identical non-empty labels "
    "(union-find on label_sha1); stratify groups by ablation composition; per stratum shuffle with "
    "np.random.default_rng(seed); allocate round(fraction * n_groups) test then validation groups "
    "across strata by largest remainder (at least 1 each when there are >= 3 groups); deal the "
    "train + validation groups round-robin, stratum by stratum, into k folds"
)
"""How ``split_patients`` splits, written into the plan."""

SPLIT_SEED = 0
"""Seed of the split's shuffle (a plan records the one it used)."""

N_FOLDS = 5
"""Cross-validation folds over train + validation, as nnU-Net."""

TEST_FRACTION = 0.2
"""Share of the patient groups held out for test ..."""

VAL_FRACTION = 0.2
"""... and for validation (the rest train)."""
