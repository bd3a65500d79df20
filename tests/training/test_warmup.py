"""Stages 2a and 2b (bundle/training/warmup.py): Gl trained alone, then Ga + Gs on the frozen Gl, before the joint
training; and the LA and scar terms they use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bundle.networks import CascadeNet, MultiTaskUNet
from bundle.training.losses import LALoss, ScarLoss, UncertaintyWeightedLoss
from bundle.training.warmup import warm_up_la, warm_up_scar


def _batches(n: int = 2, size: int = 32) -> list[dict]:
    """Fixed batches of a bright disc (the LA) with a brighter patch of scar on its rim, on noise; targets
    [LA, scar]."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    radius = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2).sqrt()
    disc = (radius < size / 4).float()
    scar = disc * (radius > size / 4 - 3) * (xx > size / 2)
    out = []
    for _ in range(n):
        image = disc + scar + 0.3 * torch.randn(2, 1, size, size, generator=g)
        label = torch.stack([disc, scar])[None].repeat(2, 1, 1, 1)
        out.append({"image": image, "label": label})
    return out


def _net() -> CascadeNet:
    torch.manual_seed(0)
    return CascadeNet(1, (4, 8, 16), 4, "adaptive", 4)


def test_la_loss_is_cross_entropy_plus_batch_dice_of_channel_0():
    pred, target = torch.randn(3, 2, 8, 8), (torch.rand(3, 2, 8, 8) > 0.5).float()
    p = torch.sigmoid(pred[:, 0])
    t = target[:, 0]
    dice = 1 - (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
    expected = F.binary_cross_entropy_with_logits(pred[:, 0], t) + dice
    assert torch.allclose(LALoss()(pred, target), expected, atol=1e-6)
    assert torch.allclose(LALoss(dice=False)(pred[:, :1], target), F.binary_cross_entropy_with_logits(pred[:, 0], t))
    # the joint loss's LA part is the same term
    ce, _ = UncertaintyWeightedLoss(la_dice=True).parts(pred, target)
    assert torch.allclose(ce, expected, atol=1e-6)


def test_warm_up_trains_gl_alone_and_lowers_its_la_loss():
    net, batches = _net(), _batches()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss = LALoss()
    with torch.no_grad():
        net.eval()
        start = sum(float(loss(net.gl(b["image"]), b["label"])) for b in batches)
    assert warm_up_la(net, batches, epochs=15, learning_rate=1e-2, device="cpu") == 15
    with torch.no_grad():
        net.eval()
        end = sum(float(loss(net.gl(b["image"]), b["label"])) for b in batches)
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert end < 0.7 * start
    assert changed and all(k.startswith("gl.") for k in changed)  # Ga and Gs are left as built
    assert any(k.startswith("gl.") and k.endswith("weight") for k in changed)


def test_no_warm_up_changes_nothing_and_a_network_without_gl_is_refused():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert warm_up_la(net, _batches(), epochs=0, learning_rate=1e-2, device="cpu") == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="gl_warmup_epochs: 0"):
        warm_up_la(MultiTaskUNet(1, (4, 8, 16)), _batches(), epochs=1, learning_rate=1e-2, device="cpu")
    assert warm_up_la(MultiTaskUNet(1, (4, 8, 16)), _batches(), epochs=0, learning_rate=1e-2, device="cpu") == 0


def test_scar_loss_is_cross_entropy_plus_batch_dice_of_channel_1():
    pred, target = torch.randn(3, 2, 8, 8), (torch.rand(3, 2, 8, 8) > 0.5).float()
    p, t = torch.sigmoid(pred[:, 1]), target[:, 1]
    dice = 1 - (2 * (p * t).sum() + 1e-5) / (p.sum() + t.sum() + 1e-5)
    expected = F.binary_cross_entropy_with_logits(pred[:, 1], t) + dice
    assert torch.allclose(ScarLoss()(pred, target), expected, atol=1e-6)
    # the joint loss's scar part is the same Dice term
    _, scar_dice = UncertaintyWeightedLoss().parts(pred, target)
    assert torch.allclose(scar_dice, dice, atol=1e-6)


def test_scar_warm_up_trains_ga_and_gs_on_a_frozen_gl_and_lowers_the_scar_loss():
    net, batches = _net(), _batches()
    warm_up_la(net, batches, epochs=5, learning_rate=1e-2, device="cpu")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    loss = ScarLoss()

    def scar_loss() -> float:
        with torch.no_grad():
            net.eval()
            return sum(float(loss(net(b["image"]), b["label"])) for b in batches)

    start = scar_loss()
    assert warm_up_scar(net, batches, epochs=15, learning_rate=1e-2, device="cpu") == 15
    assert net.training and net.gl.training  # left in training mode for the joint training
    end = scar_loss()
    changed = {k for k, v in net.state_dict().items() if not torch.equal(before[k], v)}
    assert end < 0.7 * start
    assert any(k.startswith("gs.") for k in changed) and any(k.startswith("ga.") for k in changed)
    assert not any(k.startswith("gl.") for k in changed)  # weights and batch statistics of Gl untouched


def test_no_scar_warm_up_changes_nothing_and_a_network_without_gl_is_refused():
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert warm_up_scar(net, _batches(), epochs=0, learning_rate=1e-2, device="cpu") == 0
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="scar_warmup_epochs: 0"):
        warm_up_scar(MultiTaskUNet(1, (4, 8, 16)), _batches(), epochs=1, learning_rate=1e-2, device="cpu")
