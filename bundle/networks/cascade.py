"""Gls = Gs o Ga o Gl: the cascade segmentation network and its ablation variants (paper Fig. 11)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bundle.networks.attention import AdaptiveAttention
from bundle.networks.scar import ScarResNet
from bundle.networks.unet import LAUNet

__all__ = ["CASCADE_OPS", "CascadeNet"]

#: How Gs sees the image and the LA probability y_l: adaptive attention Ga (Oac), I + y_l (Oa), I * y_l (Op),
#: cat(I, y_l) (Oc), I alone (RN, independent nets), I * [y_l > 0.5] without gradient to Gl (RN+LA).
CASCADE_OPS = ("adaptive", "add", "product", "concat", "none", "roi")


class CascadeNet(nn.Module):
    """Joint LA + scar segmenter; ``forward(image)`` -> (B, 2, H, W) logits, channel 0 LA, channel 1 scar.

    ``y_l = sigmoid(Gl(I))`` and the Gs input depends on ``cascade`` (see ``CASCADE_OPS``). Attributes: ``gl``
    (LAUNet), ``ga`` (AdaptiveAttention, None unless ``cascade == "adaptive"``), ``gs`` (ScarResNet), ``cascade``.
    ``norm`` (a MONAI norm spec) is the normalisation of Gl and Gs: ``"batch"`` (the paper's layers),
    ``("batch", {"track_running_stats": False})`` (the paper's "current statistics" at test time too) or
    ``"instance"`` (per-slice statistics, the same in training and inference).
    """

    def __init__(
        self,
        in_channels: int = 1,
        gl_widths: Sequence[int] = (32, 64, 128, 256, 512),
        gs_width: int = 32,
        cascade: str = "adaptive",
        lstm_channels: int = 32,
        gs_blocks: int = 3,
        gs_convs: int = 3,
        gs_kernel: int = 5,
        norm: str | tuple = "batch",
    ) -> None:
        super().__init__()
        if cascade not in CASCADE_OPS:
            raise ValueError(f"Unknown cascade op {cascade!r}; expected one of {CASCADE_OPS}.")
        self.cascade = cascade
        self.gl = LAUNet(in_channels, 1, gl_widths, norm=norm)
        self.ga: AdaptiveAttention | None = (
            AdaptiveAttention(in_channels, lstm_channels) if cascade == "adaptive" else None
        )
        gs_in = in_channels + 1 if cascade == "concat" else in_channels
        self.gs = ScarResNet(gs_in, 1, gs_width, gs_blocks, gs_convs, gs_kernel, norm=norm)

    def scar_input(self, image: torch.Tensor, la_prob: torch.Tensor) -> torch.Tensor:
        """The Gs input for this cascade op, from the image I and the LA probability y_l."""
        ga = self.ga
        if ga is not None:
            return ga(image, la_prob)
        if self.cascade == "add":
            return image + la_prob
        if self.cascade == "product":
            return image * la_prob
        if self.cascade == "concat":
            return torch.cat([image, la_prob], dim=1)
        if self.cascade == "roi":
            return image * (la_prob.detach() > 0.5).to(image.dtype)
        return image

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, 2, H, W): [LA logits, scar logits]."""
        la = self.gl(image)
        scar = self.gs(self.scar_input(image, torch.sigmoid(la)))
        return torch.cat([la, scar], dim=1)
