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
# Training augmentation (nnU-Net v2's defaults: nnUNetTrainer.get_training_transforms and
# configure_rotation_dummyDA_mirroring_and_inital_patch_size), as MONAI transforms
# --------------------------------------------------------------------------------------------

AUG_ROTATION_PROB = 0.2
"""Chance that a training patch is rotated (nnU-Net's SpatialTransform ``p_rotation=0.2``); when it is, every axis of
the block's rotation gets its own angle (``p_rot_per_axis=1``), as MONAI's RandRotated draws one per range."""

AUG_ROTATION_2D_DEG = 180.0
"""nnU-Net's rotation range for 2D patches whose long side is at most AUG_ELONGATED_PATCH_RATIO times the short one
(+-180 degrees) ..."""

AUG_ROTATION_2D_ELONGATED_DEG = 15.0
"""... and for more elongated 2D patches (+-15 degrees) ..."""

AUG_ELONGATED_PATCH_RATIO = 1.5
"""... with this ratio of the patch's sides as the limit."""

AUG_ROTATION_3D_DEG = 30.0
"""nnU-Net's rotation range for 3D patches, about each of the three axes (+-30 degrees) ..."""

AUG_ROTATION_DUMMY_2D_DEG = 180.0
"""... and, for an anisotropic 3D patch ("dummy 2D" augmentation), in-plane only (+-180 degrees)."""

AUG_ANISOTROPY_THRESHOLD = 3.0
"""A 3D patch gets nnU-Net's dummy-2D augmentation (spatial transforms in-plane only, no low-resolution simulation
through the slices) when its largest side is more than this many times its first, through-plane side (nnU-Net's
``ANISO_THRESHOLD = 3`` on ``max(patch_size) / patch_size[0]``)."""

AUG_ORIENTED_MAX_ROTATION_DEG = 30.0
"""Deviation from nnU-Net: every rotation range is capped at +-30 degrees. nnU-Net knows nothing of a dataset's
anatomy and rotates 2D patches by up to +-180 degrees; here every scan is turned to the plan's orientation before
either stage sees it, so the LA always lies posterior, with the aorta, the right atrium and the spine on known
sides, and a network that may rely on that tells the LA from the other blood pools more easily. What varies between
real scans is the heart's axis and an oblique acquisition: a few tens of degrees, nnU-Net's own 3D range."""

AUG_SCALING_PROB = 0.2
"""Chance that a patch is scaled (nnU-Net's ``p_scaling=0.2``) ..."""

AUG_SCALING_RANGE = (0.7, 1.4)
"""... by a factor s drawn from this range, one for all axes (``p_synchronize_scaling_across_axes=1``); nnU-Net's s
scales the sampling grid (s > 1: smaller anatomy), so MONAI's RandZoomd gets the zoom 1 / s, in
(1 / 1.4, 1 / 0.7). RandZoomd with one zoom range zooms every axis alike, which RandAffined cannot (its scale is drawn
per axis). Deviations: rotation and scaling are two resamplings (RandRotated, RandZoomd) where nnU-Net's
SpatialTransform does one; both fire together for 4 % of the patches. nnU-Net crops a larger patch first so that a
rotated or shrunk patch has data in its corners; here the patch itself is transformed and its corners are padded
(stage 2: zeros, the mean of the ROI-z-scored image; stage 1: the border, as the coarse scan is padded). Labels are
resampled with nearest neighbour, where nnU-Net interpolates each label's one-hot map linearly and takes the largest:
the same labels, with slightly blockier edges."""

AUG_ELASTIC_PROB = 0.0
"""Elastic deformation is off in nnU-Net v2 (``p_elastic_deform=0``); a plan edited to turn it on gets MONAI's
Rand2DElasticd (stage 2) or Rand3DElasticd (stage 1) with nnU-Net v1's parameters below."""

AUG_ELASTIC_SIGMA_RANGE = (9.0, 13.0)
"""nnU-Net v1's ``elastic_deform_sigma``: a uniform(-1, 1) displacement field smoothed by a Gaussian of this sigma
(voxels) ..."""

AUG_ELASTIC_ALPHA_2D = (0.0, 200.0)
"""... and scaled by ``elastic_deform_alpha`` drawn from this range for 2D (v1's default_2D_augmentation_params) ...
"""

AUG_ELASTIC_ALPHA_3D = (0.0, 900.0)
"""... and from this range for 3D (v1's default_3D_augmentation_params). MONAI's Rand3DElasticd does exactly this
(``sigma_range``, ``magnitude_range``). Rand2DElasticd instead draws N(0, magnitude^2) offsets on control points
every ``spacing`` pixels: the planner puts the control points 2 * mid sigma apart (about the correlation length of
the smoothed field) and draws the magnitude up to the field's standard deviation for the largest alpha and the mid
sigma, alpha / (sqrt(3) * 2 * sqrt(pi) * sigma) pixels (a Gaussian of sigma s keeps 1 / (4 pi s^2) of white noise's
variance in 2D; uniform(-1, 1) has variance 1/3)."""

AUG_NOISE_PROB = 0.1
"""Chance of additive Gaussian noise (nnU-Net's GaussianNoiseTransform, ``apply_probability=0.1``) ..."""

AUG_NOISE_STD_RANGE = (0.0, 0.1)
"""... whose standard deviation is drawn from this range (nnU-Net's ``noise_variance=(0, 0.1)``, which its transform
uses as the standard deviation); MONAI's RandGaussianNoised with ``std=0.1, sample_std=True`` draws the same."""

AUG_BLUR_PROB = 0.2
"""Chance of Gaussian blur (nnU-Net's ``apply_probability=0.2``) ..."""

AUG_BLUR_P_PER_CHANNEL = 0.5
"""... times the chance per channel (``p_per_channel=0.5``): 0.1 for the one LGE channel ..."""

AUG_BLUR_SIGMA_RANGE = (0.5, 1.0)
"""... with a sigma (voxels) drawn from this range per axis (``synchronize_axes=False``), as RandGaussianSmoothd
draws ``sigma_x``, ``sigma_y`` (, ``sigma_z``)."""

AUG_BRIGHTNESS_PROB = 0.15
"""Chance of multiplicative brightness (nnU-Net's MultiplicativeBrightnessTransform, ``apply_probability=0.15``) ..."""

AUG_BRIGHTNESS_RANGE = (0.75, 1.25)
"""... by a multiplier from this range (nnU-Net's BGContrast draws it below or above 1 with equal chance; both halves
are 0.25 wide, so that is uniform on the range): RandScaleIntensityd's ``factors`` are the multiplier minus 1."""

AUG_CONTRAST_PROB = 0.15
"""Chance of a contrast change (nnU-Net's ContrastTransform, ``apply_probability=0.15``) ..."""

AUG_CONTRAST_RANGE = (0.75, 1.25)
"""... (image - mean) * factor + mean with the factor from this range, clipped to the patch's former range
(``preserve_range=True``): MONAI's RandScaleIntensityFixedMeand(``fixed_mean=True``, ``preserve_range=True``),
``factors`` = factor minus 1, uniform on the range (nnU-Net's BGContrast: below or above 1 with equal chance; the
halves are equally wide, so the same)."""

AUG_LOW_RES_PROB = 0.25
"""Chance of simulated low resolution (nnU-Net's SimulateLowResolutionTransform, ``apply_probability=0.25``) ..."""

AUG_LOW_RES_P_PER_CHANNEL = 0.5
"""... times the chance per channel (``p_per_channel=0.5``): 0.125 for one channel ..."""

AUG_LOW_RES_ZOOM_RANGE = (0.5, 1.0)
"""... down-sampled by a factor from this range, the same for every axis (``synchronize_axes=True``), with
nearest-exact, and back with (bi/tri)linear interpolation, as MONAI's RandSimulateLowResolutiond does. nnU-Net leaves
the through-plane axis alone under dummy-2D augmentation; MONAI's transform cannot, so the planner turns it off for
such a stage-1 patch rather than blur its few slices together."""

AUG_GAMMA_PROB = 0.3
"""Chance of a gamma change (nnU-Net's GammaTransform, ``p_invert_image=0``, ``apply_probability=0.3``) ..."""

AUG_INVERTED_GAMMA_PROB = 0.1
"""... and, before it, of a gamma change of the inverted image (``p_invert_image=1``, ``apply_probability=0.1``) ..."""

AUG_GAMMA_RANGE = (0.7, 1.5)
"""... with gamma from this range on the image rescaled to [0, 1], mean and standard deviation restored afterwards
(``p_retain_stats=1``): MONAI's RandAdjustContrastd(``retain_stats=True``, ``invert_image`` True for the inverted
one). Deviation: MONAI draws gamma uniformly on the range (gamma < 1 for 3/8 of the draws), nnU-Net's BGContrast
below or above 1 with equal chance."""

AUG_MIRROR_PROB = 0.5
"""Chance of a flip along each mirror axis (nnU-Net's MirrorTransform) ..."""

AUG_MIRROR = False
"""... whose axes are all spatial axes in nnU-Net ((0, 1) in 2D, (0, 1, 2) in 3D). Deviation: no mirroring. The plan
turns every scan to one orientation, so left and right, front and back are anatomy here: the LA lies posterior,
left of the right atrium and in front of the spine and the descending aorta, which mirrored training patches would
make ambiguous. A plan edited to list ``mirror.axes`` (or ``--mirror_axes`` in configs/train.yaml) brings nnU-Net's
mirroring back with AUG_MIRROR_PROB per axis."""

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
        "coarsen_spacing": True,
        "description": "narrow networks and patches of at most 128 px for a 2-core CPU, on a grid coarse enough "
        "for the patch to hold the whole LA and its neighbours (the blood pools that touch it are told apart by "
        "context; a 0.625 mm isotropic scan's ROI would otherwise cost stage 2 six times as many pixels)",
    },
}
"""Settings that differ between machines. ``paper``: the published widths, patch and batch.
``cpu``: a laptop-trainable variant (base width 16, max 128, batch <= 4, patch <= 128 px on a coarsened grid: at
the native 0.625 mm a 128 px patch (80 mm) did not hold the LA, and a 2D network told the LA from the RA, aortic
root and LV that touch it only from a part of the picture);
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
