"""T: the joint discriminative network, conditioned on the image (paper Sec. III-E)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.blocks import Convolution, SubpixelUpsample
from torch import nn

__all__ = ["ConfidenceMap", "JointDiscriminator"]


class JointDiscriminator(nn.Module):
    """Per-pixel real/fake logits for cat(I, LA map, scar map).

    Strided (2) ``kernel_size`` convolutions with BN + ReLU over ``channels``, a sub-pixel convolution up-sampling by
    ``subpixel_scale`` (default ``2 ** len(channels)``), a top-left crop to the input's H x W (the strided convs
    round sizes up, so the up-sampled map is at least that large), and a 1x1 convolution to one channel. With the
    defaults the sub-pixel convolution has 12 * 16 * 16 = 3072 kernels, as in the paper (``subpixel_kernel`` wide). The sigmoid of the
    paper's confidence map is left to the loss.
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: Sequence[int] = (32, 64, 128, 256),
        kernel_size: int = 5,
        subpixel_scale: int | None = None,
        subpixel_out: int = 12,
        subpixel_kernel: int = 1,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise ValueError("channels must not be empty.")
        scale = 2 ** len(channels) if subpixel_scale is None else int(subpixel_scale)
        if scale < 2 ** len(channels):
            raise ValueError(f"subpixel_scale {scale} cannot restore the input size after {len(channels)} strides.")
        ins = (in_channels,) + channels[:-1]
        self.convs = nn.ModuleList(
            [
                Convolution(2, c_in, c_out, strides=2, kernel_size=kernel_size, norm="batch", act="relu")
                for c_in, c_out in zip(ins, channels)
            ]
        )
        # The paper gives the sub-pixel convolution's 3072 kernels but not their size; a 1x1 kernel costs a ninth
        # of MONAI's default 3x3 and is most of T's compute at 3x3. No blur after the pixel shuffle
        # (apply_pad_pool=False): the paper has none, and a 16 x 16 average pool took 2/3 of T's time on a CPU.
        conv = nn.Conv2d(channels[-1], subpixel_out * scale * scale, kernel_size=subpixel_kernel,
                         padding=subpixel_kernel // 2)
        self.subpixel = SubpixelUpsample(
            2, in_channels=channels[-1], out_channels=subpixel_out, scale_factor=scale, conv_block=conv, apply_pad_pool=False
        )
        self.head = nn.Conv2d(subpixel_out, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, in_channels, H, W) -> ((B, 1, H, W) logits, the strided convs' outputs for feature matching)."""
        height, width = x.shape[2], x.shape[3]
        features: list[torch.Tensor] = []
        y = x
        for conv in self.convs:
            y = conv(y)
            features.append(y)
        y = self.subpixel(y)[:, :, :height, :width]
        return self.head(y), features


class ConfidenceMap(nn.Module):
    """T as exported for inference: (B, 3, H, W) cat(I, LA, scar) -> (B, 1, H, W) confidence that the maps are true.

    The sigmoid of T's per-pixel logits (the paper's confidence map, Sec. III-E) without the feature maps, which
    only training needs. ``load_state_dict`` takes T's own state dict, so a ``discriminator.pt`` loads as it is.
    """

    def __init__(self, discriminator: JointDiscriminator) -> None:
        super().__init__()
        self.discriminator = discriminator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _ = self.discriminator(x)
        return torch.sigmoid(logits)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """T's state dict (keys without the ``discriminator.`` prefix) or this module's own."""
        if not any(k.startswith("discriminator.") for k in state_dict):
            return self.discriminator.load_state_dict(state_dict, strict, assign)
        return super().load_state_dict(state_dict, strict, assign)
