"""Stage 1: the LA localiser, a small 3D U-Net on a coarse copy of the whole scan."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import UNet

__all__ = ["LocalizerNet"]


class LocalizerNet(UNet):
    """MONAI's 3D ``UNet`` mapping a coarse, z-scored whole scan (B, 1, z, y, x) to LA logits (B, 1, z, y, x).

    Widths and strides come from the plan's ``localizer`` decision; one residual unit per level and instance
    normalisation (the scans' intensities differ, a batch of two has little to share). Its LA is only used for
    a bounding box (the MICCAI 2018 challenge winner's locate-then-segment, nnU-Net's low-resolution stage).
    """

    def __init__(self, widths: Sequence[int] = (8, 16, 32), strides: Sequence[int] = (2, 2), in_channels: int = 1,
                 num_res_units: int = 1, norm: str | tuple = "instance") -> None:
        widths, strides = tuple(int(w) for w in widths), tuple(int(s) for s in strides)
        if len(strides) != len(widths) - 1:
            raise ValueError(f"need one stride per pooling: {len(widths)} widths but {len(strides)} strides")
        super().__init__(spatial_dims=3, in_channels=in_channels, out_channels=1, channels=widths, strides=strides,
                         num_res_units=num_res_units, norm=norm)
