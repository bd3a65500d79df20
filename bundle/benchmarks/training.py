"""Time JAS-GAN training iterations (one T step + one Gls step) for a network size and patch size.

``jasgan-benchmark training``; random data of the patch size, so only compute is timed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from bundle.benchmarks.presets import preset
from bundle.networks import CascadeNet, JointDiscriminator
from bundle.planning import rules
from bundle.training.losses import UncertaintyWeightedLoss
from bundle.training.trainer import JasGanTrainer


def _batch(batch_size: int, patch: Sequence[int], device: torch.device) -> dict:
    image = torch.randn(batch_size, 1, *patch, device=device)
    label = torch.zeros(batch_size, 2, *patch, device=device)
    h, w = patch
    label[:, 0, h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
    label[:, 1, h // 4 : h // 4 + 3, w // 4 : 3 * w // 4] = 1
    return {"image": image, "label": label}


def time_iterations(
    profile: str = rules.DEFAULT_PROFILE,
    patch: Sequence[int] | None = None,
    batch_size: int | None = None,
    gl_widths: Sequence[int] | None = None,
    gs_width: int | None = None,
    lstm_channels: int | None = None,
    cascade: str = "adaptive",
    discriminator: bool = True,
    iterations: int = 5,
    warmup: int = 1,
    device: str | None = None,
    amp: bool = False,
    amp_dtype: str = "bfloat16",
) -> dict:
    """Median seconds per training iteration (after ``warmup``) and the sizes it was measured with.

    ``amp`` runs the trainer's mixed-precision path in ``amp_dtype`` on any device (training configs enable it
    on CUDA only; this measures what it would cost elsewhere too). Sizes not given are the ``profile``'s
    (:func:`~bundle.benchmarks.presets.preset`).
    """
    sizes = preset(profile, patch=patch, batch_size=batch_size, gl_widths=gl_widths, gs_width=gs_width,
                   lstm_channels=lstm_channels)
    patch, batch_size, gl_widths = tuple(sizes["patch"]), int(sizes["batch_size"]), tuple(sizes["gl_widths"])
    gs_width, lstm_channels = int(sizes["gs_width"]), int(sizes["lstm_channels"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = CascadeNet(1, gl_widths, gs_width, cascade, lstm_channels).to(dev)
    loss = UncertaintyWeightedLoss().to(dev)
    disc = JointDiscriminator(3).to(dev) if discriminator else None
    opt = torch.optim.Adam(list(net.parameters()) + list(loss.parameters()), lr=1e-3)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-4) if disc is not None else None
    batch = _batch(batch_size, patch, dev)
    trainer = JasGanTrainer(dev, 1, [batch], net, opt, loss, disc, d_opt, amp=amp, amp_dtype=amp_dtype)
    trainer.state.device = dev
    times = []
    for i in range(warmup + iterations):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer._iteration(trainer, batch)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    return {
        "profile": profile, "device": str(dev), "threads": torch.get_num_threads(), "patch": list(patch), "batch_size": batch_size,
        "gl_widths": list(gl_widths), "gs_width": gs_width, "lstm_channels": lstm_channels, "cascade": cascade,
        "discriminator": discriminator, "amp": amp, "amp_dtype": amp_dtype if amp else "float32",
        "iterations": iterations,
        "seconds_per_iteration": round(times[len(times) // 2], 4),
        "parameters_gls": sum(p.numel() for p in net.parameters()),
    }
