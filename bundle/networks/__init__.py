"""JAS-GAN networks (paper Sec. III, Fig. 2 and Fig. 11), all 2D, and the 3D stage-1 localiser.

Paper symbol -> class:

- Gl, the LA encoder-decoder (EDN): :class:`LAUNet`
- Ga, the convLSTM adaptive attention connection (AC, Eq. 1): :class:`AdaptiveAttention` (with :class:`ConvLSTMCell`)
- Gs, the scar residual network (RN): :class:`ScarResNet`
- Gls = Gs o Ga o Gl, the cascade and its ablation connections (``CASCADE_OPS``): :class:`CascadeNet`
- T, the joint discriminator conditioned on the image: :class:`JointDiscriminator` (exported for the quality score
  as :class:`ConfidenceMap`)

Stage 1 of the whole-scan pipeline, the 3D LA localiser that finds the region Gls segments: :class:`LocalizerNet`.

The LA method JAS-GAN compares with, the multi-task U-Net of Chen et al. (2018): :class:`MultiTaskUNet`.

Loading them from files (state dicts, TorchScript exports): :mod:`bundle.networks.weights`.
"""

from __future__ import annotations

from bundle.networks.attention import AdaptiveAttention, ConvLSTMCell
from bundle.networks.cascade import CASCADE_OPS, CascadeNet
from bundle.networks.discriminator import ConfidenceMap, JointDiscriminator
from bundle.networks.localizer import LocalizerNet
from bundle.networks.multitask import NO_SCAR_LOGIT, MultiTaskUNet
from bundle.networks.scar import ScarResNet
from bundle.networks.unet import LAUNet

__all__ = [
    "CASCADE_OPS",
    "NO_SCAR_LOGIT",
    "AdaptiveAttention",
    "CascadeNet",
    "ConfidenceMap",
    "ConvLSTMCell",
    "JointDiscriminator",
    "LAUNet",
    "LocalizerNet",
    "MultiTaskUNet",
    "ScarResNet",
]
