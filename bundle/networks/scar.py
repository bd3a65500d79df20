"""Gs: the residual network (RN) that segments atrial scar at full resolution (paper Sec. III-E)."""

from __future__ import annotations

import torch
from monai.networks.blocks import ResidualUnit
from torch import nn

__all__ = ["ScarResNet"]


class ScarResNet(nn.Module):
    """``blocks`` residual blocks without down-sampling, then a 1x1 convolution to scar logits.

    Each block is a MONAI ``ResidualUnit`` of ``convs_per_block`` (conv ``kernel_size`` -> BN -> ReLU) subunits,
    all keeping their BN + ReLU (``last_conv_only=False``); the skip is a 1x1 projection where channels change.
    The paper's Gs: 3 blocks x 3 convolution blocks of 5x5 convolutions with 32 filters.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 32,
        blocks: int = 3,
        convs_per_block: int = 3,
        kernel_size: int = 5,
        norm: str | tuple = "batch",
    ) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}.")
        self.blocks = nn.Sequential(
            *[
                ResidualUnit(
                    spatial_dims=2,
                    in_channels=in_channels if b == 0 else width,
                    out_channels=width,
                    strides=1,
                    kernel_size=kernel_size,
                    subunits=convs_per_block,
                    adn_ordering="NDA",
                    act="relu",
                    norm=norm,
                    last_conv_only=False,
                )
                for b in range(blocks)
            ]
        )
        self.head = nn.Conv2d(width, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H, W) logits."""
        return self.head(self.blocks(x))
