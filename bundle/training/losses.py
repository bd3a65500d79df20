"""JAS-GAN objectives (Section III-C/D): segmentation loss Ls, discriminator loss Ld, adversarial loss Lg."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch import nn


class LALoss(nn.Module):
    """The LA term of Eq. 5 on its own: cross-entropy of the LA logits, plus their batch Dice loss with ``dice``
    (nnU-Net's Dice + CE). ``pred`` holds the LA logits in channel 0 (Gl's single channel, or Gls' [LA, scar]);
    ``target`` the matching maps [LA, ...], (B, >= 1, H, W)."""

    channel = 0
    """The channel of ``pred`` and ``target`` scored."""

    def __init__(self, dice: bool = True, smooth: float = 1e-5):
        super().__init__()
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=smooth, smooth_dr=smooth) if dice else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        c = slice(self.channel, self.channel + 1)
        loss = F.binary_cross_entropy_with_logits(pred[:, c], target[:, c])
        return loss if self.dice is None else loss + self.dice(pred[:, c], target[:, c])


class ScarLoss(LALoss):
    """The scar term of Eq. 5 (batch Dice loss of the scar logits, channel 1) plus their cross-entropy (nnU-Net's
    Dice + CE), for the scar warm-up: the cross-entropy gives every scar-free patch a gradient too, where the batch
    Dice of a batch without scar has none. ``pred`` and ``target`` hold [LA, scar], (B, 2, H, W)."""

    channel = 1

    def __init__(self, smooth: float = 1e-5):
        super().__init__(dice=True, smooth=smooth)


class UncertaintyWeightedLoss(nn.Module):
    """Ls of Eq. 5 with lambda1, lambda2 learned by homoscedastic uncertainty (Kendall et al., CVPR 2018).

    ``Ls = exp(-s1) * CE(y_l, yhat_l) + s1 / 2 + exp(-s2) * Dice(y_s, yhat_s) + s2 / 2`` with learnable
    log-variances ``s = log sigma^2``, so lambda_i = exp(-s_i). The log-variances are parameters of this
    module: give them to the generator's optimiser and keep the module in the checkpoint.

    ``pred`` holds [LA, scar] logits and ``target`` the matching binary maps, shape (B, 2, H, W).
    ``learn_weights=False`` freezes lambda1 = lambda2 = 1 (a plain sum). ``la_dice=True`` adds the batch Dice loss
    of the LA to its cross-entropy (nnU-Net's Dice + CE; not in the paper): the LA term's gradient then does not
    fade as background dominates a patch. ``train_scar=False`` (a dataset without scar labels, ``scar_labels:
    none``) leaves the scar term out: ``Ls = exp(-s1) * CE + s1 / 2``, the LA alone. ``scar_ce=True`` adds the
    scar logits' cross-entropy to their Dice loss (:class:`ScarLoss`, nnU-Net's Dice + CE; not in the paper).
    """

    def __init__(self, learn_weights: bool = True, init_log_vars: Sequence[float] = (0.0, 0.0), smooth: float = 1e-5,
                 la_dice: bool = False, train_scar: bool = True, scar_ce: bool = False):
        super().__init__()
        self.train_scar = bool(train_scar)
        self.log_vars = nn.Parameter(torch.tensor([float(v) for v in init_log_vars]), requires_grad=learn_weights)
        # batch=True: one Dice over the whole mini-batch, so patches without scar do not give a
        # degenerate per-sample loss (most axial patches of a pre-ablation scan hold no scar).
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=smooth, smooth_dr=smooth)
        self.la_loss = LALoss(la_dice, smooth)
        self.scar_loss = ScarLoss(smooth) if scar_ce else None

    @property
    def weights(self) -> torch.Tensor:
        """(lambda1, lambda2) = exp(-log_vars)."""
        return torch.exp(-self.log_vars.detach())

    def parts(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The unweighted (cross-entropy on LA, plus its Dice loss with ``la_dice``; Dice loss on scar, plus its
        cross-entropy with ``scar_ce``)."""
        scar = self.scar_loss(pred, target) if self.scar_loss is not None else self.dice(pred[:, 1:2], target[:, 1:2])
        return self.la_loss(pred, target), scar

    def weigh(self, ce: torch.Tensor, dice: torch.Tensor) -> torch.Tensor:
        """Ls from the unweighted parts: exp(-s1) * ce + s1 / 2 + exp(-s2) * dice + s2 / 2."""
        s = self.log_vars
        la = torch.exp(-s[0]) * ce + 0.5 * s[0]
        return la + torch.exp(-s[1]) * dice + 0.5 * s[1] if self.train_scar else la

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.weigh(*self.parts(pred, target))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-Ld of Eq. 3 per pixel: T labels every pixel of (ground truth, I) real and of (Gls(I), I) fake.

    Maximising Eq. 3 is minimising this binary cross-entropy, averaged over pixels and samples
    (the paper's ``1 - log sigma`` is read as the usual ``log(1 - sigma)``).
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def feature_matching_loss(real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Lg by feature matching (Salimans et al. 2016), the generator's adversarial term in Eq. 6.

    Per discriminator layer, the squared distance between the mini-batch means of the features of
    real and generated label maps (position by position: both are conditioned on the same images),
    averaged over positions and layers.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError("feature matching needs the same, non-zero number of real and fake feature maps")
    losses = [F.mse_loss(f.mean(0), r.detach().mean(0)) for r, f in zip(real_features, fake_features)]
    return torch.stack(losses).mean()
