"""LGE intensities and the acquisition: tissue means per intensity family, gain, gamma, bias field, blur, thick
slices, ghosting, noise.

The nominal tissue means are calibrated on the real post-ablation crop of the Cardiac MRI Toolkit
(`autoscar-data.nrrd`): LA blood pool mean 204 and SD 16.6, scar brighter than the blood pool plus 2 SD (the
crop's toolkit scar averages 265), nulled myocardium dark, fat bright-grey. A nominal acquisition (gain 1, gamma 1,
no bias, no jitter, no blur) keeps these means. Real scans vary far more, so each scan draws its tissue means from
its ``intensity`` family (:mod:`bundle.data.phantom.families`), after SynthSeg's domain randomisation (Billot et al.,
Medical Image Analysis 2023: a network trained on random contrasts learns shape, not one contrast):

- ``lge``: bright blood, myocardium nulled to a varying degree, fat from grey to brighter than blood, enhanced
  aortic and oesophageal walls, a thin LA wall often no darker than blood;
- ``dark``: blood darker than myocardium and fat (a mistimed inversion, or a late scan), scar still the brightest;
- ``random``: every tissue class its own random mean (SynthSeg), scar above the blood.

Every blood pool (LA, LV, RV, RA, aorta, pulmonary arteries and veins, coronary sinus, venae cavae) is the same
blood, within a few percent, in every family: what tells the LA from its neighbours is its shape and place, as in
real scans. Then the acquisition: smooth texture, blur of the reconstruction, the slab profile of a thicker acquired
slice (for a grid reconstructed at thinner slices), respiratory ghosts along the phase-encoding axis, a smooth bias
field, gamma and gain (the window the reconstruction chose), slice-wise gain jitter and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

BLOOD_POOL_MEAN = 204.0
BLOOD_POOL_SD = 16.6

# Nominal mean LGE intensity of each tissue (same scale as the CARMA crop, 0..~350).
TISSUE_MEANS: dict[str, float] = {
    "air": 0.0,
    "airway": 8.0,
    "lung": 14.0,
    "subcutaneous_fat": 175.0,
    "mediastinal_fat": 140.0,
    "muscle": 62.0,
    "myocardium": 48.0,  # nulled by the inversion time
    "mitral_annulus": 60.0,
    "mitral_valve": 120.0,
    "bone": 105.0,
    "csf": 35.0,
    "blood_la": BLOOD_POOL_MEAN,
    "blood_pv": BLOOD_POOL_MEAN,
    "blood_lv": 210.0,
    "blood_rv": 198.0,
    "blood_ra": 200.0,
    "blood_vc": 196.0,
    "blood_cs": 200.0,
    "blood_aorta": 214.0,
    "blood_pa": 202.0,
    "aortic_wall": 262.0,  # enhanced, as bright as scar
    "oesophageal_wall": 250.0,  # enhanced mucosa, as bright as scar
    "oesophageal_lumen": 30.0,
    "la_wall": 150.0,  # thin healthy wall: nulled myocardium blurred with blood and fat
    "scar": BLOOD_POOL_MEAN + 3.6 * BLOOD_POOL_SD,  # the crop's toolkit scar: 264.6
}
BLOOD_TISSUES = tuple(k for k in TISSUE_MEANS if k.startswith("blood_"))
"""Every blood pool: one blood, drawn together."""
TISSUE_JITTER = 0.06
"""Relative spread of each tissue mean around the nominal one (``lge`` family, besides its wider ranges)."""
BLOOD_SPREAD = 0.05
"""Relative spread of each blood pool around the LA's blood (inflow and T1 differ a little between chambers)."""
SCAR_CONTRAST_SD = (2.5, 6.0)
"""Range of the scar mean above the blood pool, in blood-pool SDs (always above the 2-SD rule)."""

INTENSITY_FAMILIES = ("lge", "dark", "random")

# Ranges of each tissue's mean as a multiple of the LA blood's, per family (lge, dark); random draws RANDOM_RANGE.
LGE_RANGES: dict[str, tuple[float, float]] = {
    "airway": (0.0, 0.06), "lung": (0.0, 0.12), "subcutaneous_fat": (0.5, 1.35), "mediastinal_fat": (0.45, 1.15),
    "muscle": (0.18, 0.45), "myocardium": (0.1, 0.55), "bone": (0.3, 0.75),
    "csf": (0.08, 0.3), "aortic_wall": (0.6, 1.45), "oesophageal_wall": (0.5, 1.35), "oesophageal_lumen": (0.0, 0.6),
}
DARK_RANGES: dict[str, tuple[float, float]] = {
    "airway": (0.0, 0.1), "lung": (0.0, 0.25), "subcutaneous_fat": (1.3, 2.2), "mediastinal_fat": (1.2, 2.0),
    "muscle": (0.7, 1.3), "myocardium": (0.9, 1.7), "bone": (0.6, 1.4),
    "csf": (0.2, 0.8), "aortic_wall": (1.1, 2.0), "oesophageal_wall": (1.0, 1.9), "oesophageal_lumen": (0.1, 1.0),
}
RANDOM_RANGE = (0.0, 2.0)
"""``random``: every non-blood class draws its mean uniformly in this multiple of the blood's (SynthSeg draws
0-255 for every class)."""


def sample_tissue_means(rng: np.random.Generator, family: str = "lge") -> dict[str, float]:
    """The tissue means of one scan of the intensity ``family`` (see the module's list)."""
    if family not in INTENSITY_FAMILIES:
        raise ValueError(f"unknown intensity family {family!r}; choose one of {', '.join(INTENSITY_FAMILIES)}")
    blood = BLOOD_POOL_MEAN * float(1.0 + rng.normal(0, 0.03))
    means = {"air": 0.0, "blood_la": blood, "blood_pv": blood * float(1.0 + rng.normal(0, 0.02))}
    for name in BLOOD_TISSUES:
        means.setdefault(name, blood * float(np.clip(1.0 + rng.normal(0, BLOOD_SPREAD), 0.85, 1.15)))
    others = [k for k in TISSUE_MEANS if k not in means and k not in ("la_wall", "scar", "mitral_annulus", "mitral_valve")]
    if family == "random":
        for name in others:
            means[name] = blood * float(rng.uniform(*RANDOM_RANGE))
    else:
        ranges = LGE_RANGES if family == "lge" else DARK_RANGES
        for name in others:
            means[name] = blood * float(rng.uniform(*ranges[name])) * float(1.0 + rng.normal(0, TISSUE_JITTER))
    myo = means["myocardium"]
    means["mitral_annulus"] = myo * float(rng.uniform(0.7, 1.5))
    means["mitral_valve"] = myo + float(rng.uniform(0.1, 0.9)) * (blood - myo)
    means["la_wall"] = myo + float(rng.uniform(0.3, 0.95)) * (blood - myo)
    contrast = float(rng.uniform(*SCAR_CONTRAST_SD)) * BLOOD_POOL_SD * blood / BLOOD_POOL_MEAN
    means["scar"] = max(blood + contrast, means["la_wall"] + contrast) if family != "dark" else \
        max(blood, myo, means["la_wall"]) * float(rng.uniform(1.2, 1.5))
    return means


@dataclass
class Acquisition:
    """Per-scan acquisition parameters (``blur_mm``: in-plane Gaussian sigma of the reconstruction; ``slab_mm``: the
    FWHM of the acquired slice profile, applied along z when thicker than the grid's slices; ``ghost``: the relative
    strength of the respiratory ghost, shifted by half the field of view along ``ghost_axis``, 1 = y, 2 = x)."""

    tissue_means: dict[str, float]
    gain: float = 1.0
    gamma: float = 1.0
    bias_strength: float = 0.0
    noise_sd: float = 12.0
    texture: float = 0.035
    slice_jitter: float = 0.0
    blur_mm: float = 0.0
    slab_mm: float = 0.0
    ghost: float = 0.0
    ghost_axis: int = 1
    family: str = field(default="lge")

    @classmethod
    def nominal(cls) -> Acquisition:
        return cls(dict(TISSUE_MEANS))

    @classmethod
    def sample(cls, rng: np.random.Generator, family: str = "lge",
               acquired_slice_mm: tuple[float, float] | None = None) -> Acquisition:
        """A random acquisition of the intensity ``family``; ``acquired_slice_mm``: the slice thicknesses the grid's
        scans may have been acquired with (see :class:`~bundle.data.phantom.profiles.Profile`)."""
        means = sample_tissue_means(rng, family)
        return cls(
            tissue_means=means,
            gain=float(rng.uniform(0.6, 1.6)),
            gamma=float(rng.uniform(0.75, 1.35)),
            bias_strength=float(rng.uniform(0.05, 0.35)),
            noise_sd=float(rng.uniform(7.0, 20.0)),
            texture=float(rng.uniform(0.02, 0.06)),
            slice_jitter=float(rng.uniform(0.0, 0.05)),
            blur_mm=float(rng.uniform(0.0, 0.6)) if rng.uniform() < 0.5 else 0.0,
            slab_mm=float(rng.uniform(*acquired_slice_mm)) if acquired_slice_mm else 0.0,
            ghost=float(rng.uniform(0.02, 0.08)) if rng.uniform() < 0.3 else 0.0,
            ghost_axis=int(rng.integers(1, 3)),
            family=family,
        )


def _kernel_matrix(n: int, step: float, corr: float) -> np.ndarray:
    """(n, m) weights spreading m coarse nodes every ``corr / 2`` mm over n voxels ``step`` mm apart."""
    x = np.arange(n) * step
    nodes = np.arange(-corr, x[-1] + 1.5 * corr, 0.5 * corr) if n > 1 else np.zeros(1)
    w = np.exp(-0.5 * ((x[:, None] - nodes[None, :]) / (0.5 * corr)) ** 2)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape, spacing, corr_mm: float) -> np.ndarray:
    """Unit-variance smooth random field (correlation length ~``corr_mm``) on a (z, y, x) grid.

    A sum of Gaussian bumps with random weights on a coarse lattice, applied separably, so a
    full 640 x 640 x 44 field costs a few matrix products instead of a 3D interpolation. The products run
    z, x, y, or x, y, z when that takes fewer multiply-adds (the 2018 challenge's 88 thin slices: the in-plane
    products then run on the few planes of lattice nodes, not on every slice).
    """
    wz, wy, wx = (torch.from_numpy(_kernel_matrix(n, s, corr_mm)) for n, s in zip(shape, spacing[::-1]))
    coarse = torch.from_numpy(rng.standard_normal((wz.shape[1], wy.shape[1], wx.shape[1])).astype(np.float32))
    # torch runs the products and the statistics on every core; the order with fewer multiply-adds
    (nz, kz), (ny, kj), (nx, ki) = wz.shape, wy.shape, wx.shape
    z_last = kz * kj * nx * (ki + ny) + nz * kz * ny * nx < nz * kj * (ki * kz + ki * nx + nx * ny)
    field = coarse if z_last else torch.tensordot(wz, coarse, dims=([1], [0]))  # (k or z, j, i)
    field = torch.matmul(field, wx.T)  # (., j, x)
    field = torch.matmul(wy, field)  # (., y, x)
    if z_last:
        field = torch.tensordot(wz, field, dims=([1], [0]))  # (z, y, x)
    std, mean = torch.std_mean(field, correction=0)
    return field.sub_(mean).div_(std.clamp_min(1e-6)).numpy()


def blur(img: np.ndarray, spacing, acq: Acquisition) -> None:
    """In place: the reconstruction's in-plane blur (``blur_mm``) and the slab profile of a slice acquired thicker
    than the grid's (``slab_mm`` FWHM along z, less the grid's own slice), as Gaussians (SciPy, separable)."""
    sx, sy, sz = (float(s) for s in spacing)
    if acq.blur_mm > 0:
        for axis, step in ((1, sy), (2, sx)):
            ndimage.gaussian_filter1d(img, acq.blur_mm / step, axis=axis, output=img, mode="nearest")
    extra = acq.slab_mm ** 2 - sz ** 2
    if extra > 0:
        ndimage.gaussian_filter1d(img, np.sqrt(extra) / 2.355 / sz, axis=0, output=img, mode="nearest")


def acquire(clean: np.ndarray, spacing, acq: Acquisition, rng: np.random.Generator, in_place: bool = False) -> np.ndarray:
    """Turn a noiseless tissue-intensity volume into an LGE scan (float32 holding integers >= 0).

    Texture and bias are smooth multiplicative fields, blur and the slab profile model the reconstruction
    (:func:`blur`), a respiratory ghost adds a faint copy shifted by half the field of view along the
    phase-encoding axis, gamma and gain model the window the scanner's reconstruction chose, slice jitter scales
    each slice, and the magnitude of complex Gaussian noise gives Rician statistics. ``in_place`` lets a float32
    ``clean`` be overwritten.
    """
    img = clean if in_place and clean.dtype == np.float32 else clean.astype(np.float32, copy=True)
    vol = torch.from_numpy(img)  # the same memory: torch's in-place operations run on every core
    if acq.texture:
        vol.mul_(torch.from_numpy(smooth_noise(rng, img.shape, spacing, 4.0)).mul_(acq.texture).add_(1.0))
    blur(img, spacing, acq)
    if acq.ghost:
        vol.add_(torch.roll(vol, img.shape[acq.ghost_axis] // 2, dims=acq.ghost_axis), alpha=acq.ghost)
    if acq.bias_strength:
        vol.mul_(torch.from_numpy(smooth_noise(rng, img.shape, spacing, 150.0)).mul_(acq.bias_strength).exp_())
    if acq.gamma != 1.0:
        top = 350.0
        vol.clamp_(min=0.0).div_(top).pow_(acq.gamma).mul_(top)
    scale = np.full(img.shape[0], acq.gain, np.float32)
    if acq.slice_jitter:
        scale *= (1.0 + acq.slice_jitter * rng.standard_normal(img.shape[0])).astype(np.float32)
    vol.mul_(torch.from_numpy(scale)[:, None, None])
    if acq.noise_sd:
        # the magnitude of complex Gaussian noise (Rician); torch draws the two 20-million-sample fields about
        # twice as fast as NumPy's PCG64, from a generator seeded by the scan's stream (still deterministic)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        sd = float(acq.noise_sd)
        real = torch.randn(img.shape, generator=gen).mul_(sd).add_(vol)
        vol = torch.hypot(real, torch.randn(img.shape, generator=gen).mul_(sd), out=real)
    # scanners store integers (DICOM LGE is 12-bit unsigned): rounding (half to even) adds 0.29 SD, far under the
    # noise
    return vol.round_().numpy()
