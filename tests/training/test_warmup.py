"""Stage 2a (bundle/training/warmup.py): Gl trained alone before the joint training, and the LA term it uses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bundle.networks import CascadeNet, MultiTaskUNet
from bundle.training.losses import LALoss, UncertaintyWeightedLoss
from bundle.training.warmup import warm_up_la


def _batches(n: int = 2, size: int = 32) -> list[dict]:
    """Fixed batches of a bright disc (the LA) on noise, targets [LA, scar]."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = (((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2).float()
    out = []
    for _ in range(n):
        image = disc + 0.3 * torch.randn(2, 1, size, size, generator=g)
        label = torch.stack([disc, torch.zeros_like(disc)])[None].repeat(2, 1, 1, 1)
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
