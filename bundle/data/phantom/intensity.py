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


TEXTURE_CORR_MM = 4.0
"""Correlation length of the tissue texture field (mm)."""
BIAS_CORR_MM = 150.0
"""Correlation length of the coil's bias field (mm)."""


def _buffer(shape) -> torch.Tensor:
    """An uninitialised float32 tensor in memory NumPy allocated: NumPy asks for transparent huge pages on large
    arrays and torch does not, so a fresh full-size buffer costs about 36 times fewer page faults (fresh pages,
    not arithmetic, dominated a whole scan's acquisition)."""
    return torch.from_numpy(np.empty(tuple(int(n) for n in shape), np.float32))


def _kernels(shape, spacing, corr_mm: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (n, m) kernel matrices (z, y, x) of a smooth field of ``corr_mm`` on a (z, y, x) grid of ``spacing``."""
    return tuple(torch.from_numpy(_kernel_matrix(n, s, corr_mm)) for n, s in zip(shape, spacing[::-1]))


def lattice(rng: np.random.Generator, shape, spacing, corr_mm: float) -> np.ndarray:
    """The random node weights of a smooth field (:func:`smooth_field`), drawn from ``rng``."""
    wz, wy, wx = _kernels(shape, spacing, corr_mm)
    return rng.standard_normal((wz.shape[1], wy.shape[1], wx.shape[1])).astype(np.float32)


def smooth_field(nodes: np.ndarray, shape, spacing, corr_mm: float, out: torch.Tensor | None = None) -> np.ndarray:
    """Unit-variance smooth random field (correlation length ~``corr_mm``) on a (z, y, x) grid from its lattice
    ``nodes`` (:func:`lattice`), written into the float32 tensor ``out`` of that shape when one is given.

    A sum of Gaussian bumps with random weights on a coarse lattice, applied separably, so a
    full 640 x 640 x 44 field costs a few matrix products instead of a 3D interpolation. The products run
    z, x, y, or x, y, z when that takes fewer multiply-adds (the 2018 challenge's 88 thin slices: the in-plane
    products then run on the few planes of lattice nodes, not on every slice). The mean and standard deviation
    come from the lattice (:func:`_field_moments`), not from a pass over the field.
    """
    wz, wy, wx = _kernels(shape, spacing, corr_mm)
    coarse = torch.from_numpy(nodes)
    # torch runs the products on every core; the order with fewer multiply-adds
    (nz, kz), (ny, kj), (nx, ki) = wz.shape, wy.shape, wx.shape
    z_last = kz * kj * nx * (ki + ny) + nz * kz * ny * nx < nz * kj * (ki * kz + ki * nx + nx * ny)
    field = coarse if z_last else torch.tensordot(wz, coarse, dims=([1], [0]))  # (k or z, j, i)
    field = torch.matmul(field, wx.T)  # (., j, x)
    out = _buffer(shape) if out is None else out
    if z_last:
        planes = torch.matmul(wy, field, out=_buffer((kz, ny, nx)))  # (k, y, x)
        torch.mm(wz, planes.view(kz, ny * nx), out=out.view(nz, ny * nx))  # (z, y, x), written in place
        field = out
    else:
        field = torch.matmul(wy, field, out=out)  # (z, y, x)
    mean, std = _field_moments(nodes.astype(np.float64), *(w.double().numpy() for w in (wz, wy, wx)))
    return field.sub_(mean).div_(max(std, 1e-6)).numpy()


def smooth_noise(rng: np.random.Generator, shape, spacing, corr_mm: float, out: torch.Tensor | None = None
                 ) -> np.ndarray:
    """:func:`smooth_field` of a lattice drawn from ``rng``."""
    return smooth_field(lattice(rng, shape, spacing, corr_mm), shape, spacing, corr_mm, out)


def _field_moments(coarse: np.ndarray, wz: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation over all voxels of the separable field ``wz x wy x wx`` applied to ``coarse``,
    from the small lattice alone (float64): the mean is ``coarse`` weighted by each kernel's column means, the
    mean square ``coarse`` against itself through the Gram matrices ``W^T W``. Exact, and unlike a float32
    reduction over tens of millions of voxels it does not depend on how the threads split the sum."""
    mean = float(np.einsum("abc,a,b,c->", coarse, wz.mean(0), wy.mean(0), wx.mean(0)))
    gram = np.einsum("az,zb->ab", wz.T, wz), np.einsum("az,zb->ab", wy.T, wy), np.einsum("az,zb->ab", wx.T, wx)
    square = np.einsum("abc,ad,be,cf,def->", coarse, *gram, coarse, optimize=True) / (wz.shape[0] * wy.shape[0] * wx.shape[0])
    return mean, float(np.sqrt(max(square - mean * mean, 0.0)))


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


def _add_half_shifted(vol: torch.Tensor, axis: int, weight: float) -> None:
    """In place: ``vol += weight * roll(vol, n // 2, axis)`` (n the axis' size), a ghost half a field of view away.

    For an even n the two halves swap, so each is added to the other through a copy of one half only, instead of
    a rolled copy of the whole volume; the sums are the same."""
    n = vol.shape[axis]
    if n % 2:
        vol.add_(torch.roll(vol, n // 2, dims=axis), alpha=weight)
        return
    low, high = vol.narrow(axis, 0, n // 2), vol.narrow(axis, n // 2, n // 2)
    kept = torch.from_numpy(np.ascontiguousarray(low.numpy()))  # a copy on huge pages (_buffer)
    low.add_(high, alpha=weight)
    high.add_(kept, alpha=weight)


@dataclass
class AcquisitionDraws:
    """A scan's random draws for :func:`acquire`, in the order it makes them: the texture and bias lattices, the
    per-slice gain jitter and the seed of the noise. Drawing them first lets the smooth fields be computed
    elsewhere (:func:`acquisition_fields`, e.g. on a second thread) while the stream stays the same."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    texture_nodes: np.ndarray | None
    bias_nodes: np.ndarray | None
    slice_scale: np.ndarray
    noise_seed: int | None


def draw_acquisition(rng: np.random.Generator, shape, spacing, acq: Acquisition) -> AcquisitionDraws:
    """Everything :func:`acquire` draws from ``rng`` for a (z, y, x) grid of ``spacing``."""
    shape, spacing = tuple(int(n) for n in shape), tuple(float(s) for s in spacing)
    texture = lattice(rng, shape, spacing, TEXTURE_CORR_MM) if acq.texture else None
    bias = lattice(rng, shape, spacing, BIAS_CORR_MM) if acq.bias_strength else None
    scale = np.full(shape[0], acq.gain, np.float32)
    if acq.slice_jitter:
        scale *= (1.0 + acq.slice_jitter * rng.standard_normal(shape[0])).astype(np.float32)
    seed = int(rng.integers(2**62)) if acq.noise_sd else None
    return AcquisitionDraws(shape, spacing, texture, bias, scale, seed)


def acquisition_fields(draws: AcquisitionDraws) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The texture and bias fields of ``draws`` (None where the acquisition has none): the costly part of
    :func:`acquire` that needs no image."""
    return tuple(None if nodes is None else smooth_field(nodes, draws.shape, draws.spacing, corr)
                 for nodes, corr in ((draws.texture_nodes, TEXTURE_CORR_MM), (draws.bias_nodes, BIAS_CORR_MM)))


def acquire(clean: np.ndarray, spacing, acq: Acquisition, rng: np.random.Generator | AcquisitionDraws,
            in_place: bool = False, fields: tuple[np.ndarray | None, np.ndarray | None] | None = None) -> np.ndarray:
    """Turn a noiseless tissue-intensity volume into an LGE scan (float32 holding integers >= 0).

    Texture and bias are smooth multiplicative fields, blur and the slab profile model the reconstruction
    (:func:`blur`), a respiratory ghost adds a faint copy shifted by half the field of view along the
    phase-encoding axis, gamma and gain model the window the scanner's reconstruction chose, slice jitter scales
    each slice, and the magnitude of complex Gaussian noise gives Rician statistics. ``rng`` is the scan's stream
    or what :func:`draw_acquisition` drew from it, ``fields`` the texture and bias fields already computed from
    those draws (:func:`acquisition_fields`; they are overwritten). ``in_place`` lets a float32 ``clean`` be
    overwritten.
    """
    img = clean if in_place and clean.dtype == np.float32 else clean.astype(np.float32, copy=True)
    draws = rng if isinstance(rng, AcquisitionDraws) else draw_acquisition(rng, img.shape, spacing, acq)
    if draws.shape != img.shape:
        raise ValueError(f"acquisition draws for a grid of {draws.shape}, image {img.shape}")
    vol = torch.from_numpy(img)  # the same memory: torch's in-place operations run on every core
    scratch = None  # one buffer for the fields and the noise: fresh pages cost more than the arithmetic
    if fields is None:
        scratch = _buffer(img.shape)
        fields = (None if draws.texture_nodes is None else
                  smooth_field(draws.texture_nodes, img.shape, spacing, TEXTURE_CORR_MM, scratch), None)
    texture, bias = fields
    if texture is not None:
        vol.mul_(torch.from_numpy(texture).mul_(acq.texture).add_(1.0))
        scratch = torch.from_numpy(texture)
    blur(img, spacing, acq)
    if acq.ghost:
        _add_half_shifted(vol, acq.ghost_axis, acq.ghost)
    if draws.bias_nodes is not None:
        if bias is None:
            bias = smooth_field(draws.bias_nodes, img.shape, spacing, BIAS_CORR_MM, scratch)
        vol.mul_(torch.from_numpy(bias).mul_(acq.bias_strength).exp_())
        scratch = torch.from_numpy(bias)
    if acq.gamma != 1.0:
        top = 350.0
        vol.clamp_(min=0.0).div_(top).pow_(acq.gamma).mul_(top)
    vol.mul_(torch.from_numpy(draws.slice_scale)[:, None, None])
    if draws.noise_seed is not None:
        # the magnitude of complex Gaussian noise (Rician); torch draws the two 20-million-sample fields about
        # twice as fast as NumPy's PCG64, from a generator seeded by the scan's stream (still deterministic)
        gen = torch.Generator().manual_seed(draws.noise_seed)
        sd = float(acq.noise_sd)
        real = torch.randn(img.shape, generator=gen, out=_buffer(img.shape) if scratch is None else scratch)
        real.mul_(sd).add_(vol)
        imaginary = torch.randn(img.shape, generator=gen, out=vol)  # the noiseless volume is in `real` now
        vol = torch.hypot(real, imaginary.mul_(sd), out=vol)
    # scanners store integers (DICOM LGE is 12-bit unsigned): rounding (half to even) adds 0.29 SD, far under the
    # noise
    return vol.round_().numpy()
