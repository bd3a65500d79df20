"""LGE intensities and the acquisition: tissue means, gain, gamma, bias field, noise.

Tissue means are calibrated on the real post-ablation crop of the Cardiac MRI Toolkit
(`autoscar-data.nrrd`): LA blood pool mean 204 and SD 16.6, scar brighter than the blood pool
plus 2 SD (the crop's toolkit scar averages 265), nulled myocardium dark, fat bright-grey.
A nominal acquisition (gain 1, gamma 1, no bias, no jitter) keeps these means; real scans vary,
so each scan draws its own gain, gamma, smooth bias field, Rician noise and slice jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BLOOD_POOL_MEAN = 204.0
BLOOD_POOL_SD = 16.6

# Nominal mean LGE intensity of each tissue (same scale as the CARMA crop, 0..~350).
TISSUE_MEANS: dict[str, float] = {
    "air": 0.0,
    "lung": 14.0,
    "subcutaneous_fat": 175.0,
    "mediastinal_fat": 140.0,
    "muscle": 62.0,
    "myocardium": 48.0,  # nulled by the inversion time
    "bone": 105.0,
    "csf": 35.0,
    "blood_la": BLOOD_POOL_MEAN,
    "blood_lv": 210.0,
    "blood_rv": 198.0,
    "blood_ra": 200.0,
    "blood_aorta": 214.0,
    "aortic_wall": 262.0,  # enhanced, as bright as scar
    "oesophageal_wall": 250.0,  # enhanced mucosa, as bright as scar
    "oesophageal_lumen": 30.0,
    "la_wall": 150.0,  # thin healthy wall: nulled myocardium blurred with blood and fat
    "scar": BLOOD_POOL_MEAN + 3.6 * BLOOD_POOL_SD,  # the crop's toolkit scar: 264.6
}
TISSUE_JITTER = 0.06
"""Relative per-scan spread of each tissue mean (contrast varies with inversion time and dose)."""
SCAR_CONTRAST_SD = (2.5, 5.0)
"""Range of the scar mean above the blood pool, in blood-pool SDs (always above the 2-SD rule)."""


@dataclass
class Acquisition:
    """Per-scan acquisition parameters."""

    tissue_means: dict[str, float]
    gain: float = 1.0
    gamma: float = 1.0
    bias_strength: float = 0.0
    noise_sd: float = 12.0
    texture: float = 0.035
    slice_jitter: float = 0.0

    @classmethod
    def nominal(cls) -> Acquisition:
        return cls(dict(TISSUE_MEANS))

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Acquisition:
        means = {k: v * float(1.0 + rng.normal(0, TISSUE_JITTER)) for k, v in TISSUE_MEANS.items()}
        means["blood_la"] = BLOOD_POOL_MEAN * float(1.0 + rng.normal(0, 0.03))
        means["scar"] = means["blood_la"] + rng.uniform(*SCAR_CONTRAST_SD) * BLOOD_POOL_SD
        return cls(
            tissue_means=means,
            gain=float(rng.uniform(0.8, 1.25)),
            gamma=float(rng.uniform(0.85, 1.15)),
            bias_strength=float(rng.uniform(0.05, 0.2)),
            noise_sd=float(rng.uniform(10.0, 14.0)),
            texture=float(rng.uniform(0.025, 0.045)),
            slice_jitter=float(rng.uniform(0.01, 0.04)),
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
    full 640 x 640 x 44 field costs a few matrix products instead of a 3D interpolation.
    """
    wz, wy, wx = (torch.from_numpy(_kernel_matrix(n, s, corr_mm)) for n, s in zip(shape, spacing[::-1]))
    coarse = torch.from_numpy(rng.standard_normal((wz.shape[1], wy.shape[1], wx.shape[1])).astype(np.float32))
    # z first (the fewest nodes), then x, then y; torch runs the products and the statistics on every core
    field = torch.tensordot(wz, coarse, dims=([1], [0]))  # (z, j, i)
    field = torch.matmul(field, wx.T)  # (z, j, x)
    field = torch.matmul(wy, field)  # (z, y, x)
    std, mean = torch.std_mean(field, correction=0)
    return ((field - mean) / std.clamp_min(1e-6)).numpy()


def acquire(clean: np.ndarray, spacing, acq: Acquisition, rng: np.random.Generator, in_place: bool = False) -> np.ndarray:
    """Turn a noiseless tissue-intensity volume into an LGE scan (float32 holding integers >= 0).

    Texture and bias are smooth multiplicative fields, gamma and gain model the window the
    scanner's reconstruction chose, slice jitter scales each slice, and the magnitude of
    complex Gaussian noise gives Rician statistics. ``in_place`` lets a float32 ``clean`` be overwritten.
    """
    img = clean if in_place and clean.dtype == np.float32 else clean.astype(np.float32, copy=True)
    if acq.texture:
        field = smooth_noise(rng, img.shape, spacing, 4.0)
        field *= np.float32(acq.texture)
        field += np.float32(1.0)
        img *= field
    if acq.bias_strength:
        field = smooth_noise(rng, img.shape, spacing, 150.0)
        field *= np.float32(acq.bias_strength)
        img *= np.exp(field, out=field)
    if acq.gamma != 1.0:
        top = np.float32(350.0)
        np.maximum(img, 0.0, out=img)
        img /= top
        np.power(img, np.float32(acq.gamma), out=img)
        img *= top
    scale = np.full(img.shape[0], acq.gain, np.float32)
    if acq.slice_jitter:
        scale *= (1.0 + acq.slice_jitter * rng.standard_normal(img.shape[0])).astype(np.float32)
    img *= scale[:, None, None]
    if acq.noise_sd:
        # the magnitude of complex Gaussian noise (Rician); torch draws the two 20-million-sample fields about
        # twice as fast as NumPy's PCG64, from a generator seeded by the scan's stream (still deterministic)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        sd = float(acq.noise_sd)
        real = torch.randn(img.shape, generator=gen).mul_(sd).add_(torch.from_numpy(img))
        imag = torch.randn(img.shape, generator=gen).mul_(sd)
        img = torch.hypot(real, imag).numpy()
    # scanners store integers (DICOM LGE is 12-bit unsigned): rounding adds 0.29 SD, far under the noise
    np.rint(img, out=img)
    return img.astype(np.float32, copy=False)
