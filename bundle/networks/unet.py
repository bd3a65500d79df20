"""Gl: the encoder-decoder network (EDN) that segments the left atrium (paper Sec. III-E)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.layers.factories import Conv
from monai.networks.nets.basic_unet import Down, TwoConv, UpCat
from torch import nn

__all__ = ["LAUNet"]


class LAUNet(nn.Module):
    """2D U-Net of variable depth with bilinear (non-trainable) up-sampling; returns LA logits.

    ``len(widths) - 1`` max-pool (2x2) stages, wired like MONAI's ``BasicUNet`` (``TwoConv`` stem, ``Down``
    encoder stages, ``UpCat`` decoder stages) but with any depth. Up-sampling is a parameter-free bilinear
    interpolation (``pre_conv=None``), so decoder stage ``i`` sees ``widths[i + 1] + widths[i]`` channels after
    concatenation and maps them to ``widths[i]``. Odd sizes are handled by ``UpCat``'s replicate padding, so any
    ``H, W >= 2 ** (len(widths) - 1)`` gives an output of exactly ``(B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        widths: Sequence[int] = (32, 64, 128, 256, 512),
        norm: str | tuple = ("batch", {}),
        act: str | tuple = ("relu", {}),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2:
            raise ValueError(f"widths needs at least two entries (one pooling), got {widths}.")
        self.widths = widths
        self.stem = TwoConv(2, in_channels, widths[0], act, norm, True, dropout)
        self.downs = nn.ModuleList(
            [Down(2, widths[i - 1], widths[i], act, norm, True, dropout) for i in range(1, len(widths))]
        )
        # deepest first: ups[j] up-samples widths[n - j] and concatenates the skip with widths[n - 1 - j] channels
        self.ups = nn.ModuleList(
            [
                UpCat(
                    2,
                    widths[i + 1],
                    widths[i],
                    widths[i],
                    act,
                    norm,
                    True,
                    dropout,
                    upsample="nontrainable",
                    pre_conv=None,
                    interp_mode="bilinear",
                    align_corners=True,
                )
                for i in reversed(range(len(widths) - 1))
            ]
        )
        self.head = Conv[Conv.CONV, 2](widths[0], out_channels, kernel_size=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features: the stem's output, then one per max-pool stage (the last is the bottleneck)."""
        skips: list[torch.Tensor] = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        return skips

    def decode(self, skips: list[torch.Tensor]) -> torch.Tensor:
        """Decoder and head over the encoder features of :meth:`encode`: (B, out_channels, H, W) logits."""
        y = skips[-1]
        n = len(skips)
        for j, up in enumerate(self.ups):
            y = up(y, skips[n - 2 - j])
        return self.head(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, H, W) image -> (B, out_channels, H, W) logits."""
        return self.decode(self.encode(x))
