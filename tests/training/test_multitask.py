"""The multi-task U-Net of Chen et al. (2018): network, loss L = L_S + lambda L_C, and its trainer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bundle.networks import NO_SCAR_LOGIT, JointDiscriminator, MultiTaskUNet
from bundle.training.multitask import MultiTaskLoss, MultiTaskTrainer, ablation_targets
from bundle.training.trainer import logged_values

WIDTHS = (4, 8, 16, 16, 16)


def tiny(widths=WIDTHS) -> MultiTaskUNet:
    torch.manual_seed(0)
    return MultiTaskUNet(1, widths, hidden=8)


def test_outputs_la_and_a_no_scar_channel_and_a_class_logit():
    net = tiny().eval()
    x = torch.randn(3, 1, 48, 40)
    seg = net(x)
    assert seg.shape == (3, 2, 48, 40)
    assert torch.all(seg[:, 1] == NO_SCAR_LOGIT) and torch.all(torch.sigmoid(seg[:, 1]) < 1e-12)
    torch.testing.assert_close(seg[:, :1], net.unet(x))  # the LA channel is the U-Net's
    seg2, logit = net.forward_tasks(x)
    torch.testing.assert_close(seg2, seg)
    assert logit.shape == (3,)
    assert net.class_level == 4  # after the 4th max-pool, as in the paper
    scripted = torch.jit.script(net)
    torch.testing.assert_close(scripted(x), seg)


def test_spatial_pyramid_pooling_takes_any_size_and_shallow_networks_use_the_deepest_stage():
    net = tiny().eval()
    for size in ((32, 32), (64, 80), (48, 33)):
        assert net.forward_tasks(torch.randn(1, 1, *size))[1].shape == (1,)
    shallow = tiny((4, 8, 16))
    assert shallow.class_level == 2
    assert shallow.classifier[0].in_features == 16 * (1 + 4 + 16)


def test_ablation_targets():
    t = ablation_targets(["post", "pre", "unknown", "post"])
    assert t[:2].tolist() == [1.0, 0.0] and math.isnan(t[2].item()) and t[3].item() == 1.0


def test_loss_is_ce_of_the_la_plus_lambda_bce_of_the_known_ablation_states():
    torch.manual_seed(1)
    seg, target = torch.randn(3, 2, 8, 8), (torch.rand(3, 2, 8, 8) > 0.5).float()
    logit, post = torch.randn(3), torch.tensor([1.0, float("nan"), 0.0])
    total, l_s, l_c = MultiTaskLoss(class_weight=0.5)(seg, target, logit, post)
    assert l_s.item() == pytest.approx(F.binary_cross_entropy_with_logits(seg[:, 0], target[:, 0]).item())
    known = F.binary_cross_entropy_with_logits(logit[[0, 2]], torch.tensor([1.0, 0.0]))
    assert l_c.item() == pytest.approx(known.item())
    assert total.item() == pytest.approx(l_s.item() + 0.5 * known.item())
    _, _, none = MultiTaskLoss()(seg, target, logit, torch.full((3,), float("nan")))
    assert none.item() == 0.0


def test_trainer_steps_both_tasks_and_lowers_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = MultiTaskUNet(1, WIDTHS, hidden=8, dropout=0.0)  # no dropout: a steady descent to test
    image = torch.randn(4, 1, 32, 32)
    target = torch.zeros(4, 2, 32, 32)
    target[:, 0, 8:24, 8:24] = 1
    batch = {"image": image, "label": target, "ablation": ["post", "pre", "post", "unknown"]}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    trainer = MultiTaskTrainer("cpu", 1, [batch], net, optimizer, MultiTaskLoss())
    trainer.state.device = torch.device("cpu")
    head = net.classifier[-1].weight.detach().clone()
    stem = next(net.unet.parameters()).detach().clone()
    first = trainer._iteration(trainer, batch)
    assert list(logged_values(first)) == ["loss", "seg_loss", "ce_la", "class_loss"] and first["class_loss"] > 0
    assert not torch.equal(head, net.classifier[-1].weight) and not torch.equal(stem, next(net.unet.parameters()))
    for _ in range(20):
        last = trainer._iteration(trainer, batch)
    assert last["loss"].item() < 0.4 * first["loss"].item()
    assert last["seg_loss"] < 0.75 * first["seg_loss"] and last["class_loss"] < 0.1 * first["class_loss"]
    with pytest.raises(ValueError, match="without the joint discriminator"):
        MultiTaskTrainer("cpu", 1, [batch], net, optimizer, MultiTaskLoss(), JointDiscriminator(3),
                         torch.optim.Adam(net.parameters()))


def test_trainer_steps_both_tasks_through_a_ddp_wrapper():
    """DDP only forwards `forward`: the multi-task trainer must still get the class logit (one-process gloo group)."""
    import socket

    import torch.distributed as dist

    from bundle.training.distributed import ddp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        net = MultiTaskUNet(1, WIDTHS, hidden=8, dropout=0.0)
        wrapped = ddp(net, "cpu")
        batch = {"image": torch.randn(2, 1, 32, 32), "label": torch.zeros(2, 2, 32, 32), "ablation": ["post", "pre"]}
        trainer = MultiTaskTrainer("cpu", 1, [batch], wrapped, torch.optim.Adam(net.parameters(), lr=1e-2),
                                   MultiTaskLoss())
        trainer.state.device = torch.device("cpu")
        head = net.classifier[-1].weight.detach().clone()
        out = trainer._iteration(trainer, batch)
        assert out["class_loss"] > 0 and not torch.equal(head, net.classifier[-1].weight)
    finally:
        dist.destroy_process_group()
