"""CPU execution backends for stage 2 on a batch of ROI slices: speed and agreement with eager float32.

Without ``scan`` the input is random; without ``weights`` the network has random weights. Run it alone on the
machine: a concurrent job skews the timings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
import torch

from bundle.benchmarks.presets import preset
from bundle.inference.backends import BACKENDS, compare_backends
from bundle.networks import CascadeNet
from bundle.networks.weights import load_weights
from bundle.planning import rules
from bundle.preprocessing.image import normalize


def example_from_scan(scan: str, label: str, roi: tuple[int, int], slices: int) -> torch.Tensor:
    """``slices`` z-scored axial ROI crops (slices, 1, H, W) centred on the LA of a scan and its LA mask."""
    image = sitk.GetArrayFromImage(sitk.ReadImage(scan)).astype(np.float32)
    la = sitk.GetArrayFromImage(sitk.ReadImage(label)) > 0
    image = normalize(image, {"scheme": "zscore_per_volume", "epsilon": 1e-8})
    zc, yc, xc = (int(round(v)) for v in np.argwhere(la).mean(axis=0))
    z0 = min(max(zc - slices // 2, 0), image.shape[0] - slices)
    y0 = min(max(yc - roi[0] // 2, 0), image.shape[1] - roi[0])
    x0 = min(max(xc - roi[1] // 2, 0), image.shape[2] - roi[1])
    crop = image[z0 : z0 + slices, y0 : y0 + roi[0], x0 : x0 + roi[1]]
    return torch.from_numpy(np.ascontiguousarray(crop))[:, None]


def time_backends(profile: str = rules.DEFAULT_PROFILE, roi: Sequence[int] = (160, 160), batch_size: int = 8,
                  repeats: int = 5, warmup: int = 2, backends: Sequence[str] | None = None, weights: str | None = None,
                  scan: str | None = None, label: str | None = None) -> dict:
    """Each of ``backends`` (default: all) on ``batch_size`` ROI slices of ``roi`` pixels (H, W), with the profile's
    network (:func:`~bundle.benchmarks.presets.preset`)."""
    sizes = preset(profile)

    def factory() -> torch.nn.Module:
        torch.manual_seed(0)
        net = CascadeNet(1, sizes["gl_widths"], sizes["gs_width"], "adaptive", sizes["lstm_channels"])
        return load_weights(net, weights) if weights else net

    roi = (int(roi[0]), int(roi[1]))
    if scan:
        if not label:
            raise ValueError("--scan needs --label (its LA mask) to centre the ROI")
        example = example_from_scan(scan, label, roi, batch_size)
    else:
        example = torch.randn(batch_size, 1, *roi, generator=torch.Generator().manual_seed(0))
    rows = compare_backends(factory, example, backends or BACKENDS, repeats=repeats, warmup=warmup)
    return {"preset": profile, "roi": list(roi), "batch_size": batch_size, "threads": torch.get_num_threads(),
            "weights": weights, "scan": scan, "backends": rows}
