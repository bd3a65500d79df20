"""Shapes, cascade connections, Eq. 1, gradient flow and TorchScript export of the JAS-GAN networks."""

from __future__ import annotations

import pytest
import torch

from bundle.networks import (
    CASCADE_OPS,
    AdaptiveAttention,
    CascadeNet,
    ConvLSTMCell,
    JointDiscriminator,
    LAUNet,
    ScarResNet,
)

SIZES = [(2, 32, 32), (2, 37, 50), (1, 45, 33)]
TINY = {"gl_widths": (4, 8, 16), "gs_width": 4, "lstm_channels": 4, "gs_blocks": 2, "gs_convs": 2}


def tiny_cascade(op: str, in_channels: int = 1) -> CascadeNet:
    torch.manual_seed(0)
    return CascadeNet(in_channels=in_channels, cascade=op, **TINY)


def capture_gs_input(net: CascadeNet, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``net`` and return (output, the tensor Gs received)."""
    seen: list[torch.Tensor] = []
    handle = net.gs.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        out = net(image)
    finally:
        handle.remove()
    return out, seen[0]


@pytest.mark.parametrize("widths", [(4, 8, 8), (4, 8, 8, 16), (4, 4, 8, 8, 16)])
@pytest.mark.parametrize("size", SIZES)
def test_launet_shapes(widths, size):
    b, h, w = size
    net = LAUNet(in_channels=1, out_channels=2, widths=widths)
    assert len(net.downs) == len(widths) - 1
    assert net(torch.randn(b, 1, h, w)).shape == (b, 2, h, w)


def test_launet_smallest_size_and_bad_widths():
    assert LAUNet(widths=(2, 2, 2, 2, 2)).eval()(torch.randn(1, 1, 16, 17)).shape == (1, 1, 16, 17)
    with pytest.raises(ValueError):
        LAUNet(widths=(4,))


@pytest.mark.parametrize("size", SIZES)
def test_attention_and_scar_shapes(size):
    b, h, w = size
    h_, c_ = ConvLSTMCell(2, hidden_channels=3)(torch.randn(b, 2, h, w), None)
    assert h_.shape == c_.shape == (b, 3, h, w)
    assert AdaptiveAttention(1, 4)(torch.randn(b, 1, h, w), torch.rand(b, 1, h, w)).shape == (b, 1, h, w)
    gs = ScarResNet(in_channels=2, out_channels=1, width=4, blocks=2, convs_per_block=3)
    assert gs(torch.randn(b, 2, h, w)).shape == (b, 1, h, w)


def test_scar_resnet_structure():
    gs = ScarResNet(in_channels=1, width=4)
    assert len(gs.blocks) == 3
    for block in gs.blocks:
        units = list(block.conv)
        assert len(units) == 3
        for unit in units:  # every subunit: 5x5 conv -> BN -> ReLU (the last one keeps its BN + ReLU)
            assert unit.conv.kernel_size == (5, 5) and unit.conv.stride == (1, 1)
            assert isinstance(unit.adn.N, torch.nn.BatchNorm2d) and isinstance(unit.adn.A, torch.nn.ReLU)
    assert isinstance(gs.blocks[0].residual, torch.nn.Conv2d)  # 1 -> 4 channels: 1x1 projection
    assert isinstance(gs.blocks[1].residual, torch.nn.Identity)


def test_convlstm_cell_equations():
    torch.manual_seed(0)
    cell = ConvLSTMCell(1, hidden_channels=2, kernel_size=3)
    x, h0, c0 = torch.randn(1, 1, 6, 7), torch.randn(1, 2, 6, 7), torch.randn(1, 2, 6, 7)
    i, f, o, g = torch.chunk(cell.gates(torch.cat([x, h0], 1)), 4, 1)
    c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h, c = cell(x, (h0, c0))
    torch.testing.assert_close(c, c1)
    torch.testing.assert_close(h, torch.sigmoid(o) * torch.tanh(c1))
    hz, cz = cell(x, None)
    torch.testing.assert_close((hz, cz), cell(x, (torch.zeros_like(h0), torch.zeros_like(c0))))


@pytest.mark.parametrize("channels", [1, 2])
def test_adaptive_attention_eq1(channels):
    torch.manual_seed(0)
    ga = AdaptiveAttention(image_channels=channels, hidden_channels=4)
    image, la = torch.randn(2, channels, 9, 11), torch.rand(2, 1, 9, 11)
    torch.testing.assert_close(ga(image, la), image * la)  # zero head at init: plain attention
    torch.nn.init.normal_(ga.head.weight)
    torch.nn.init.normal_(ga.head.bias)
    fw1, fw2 = ga.weight_maps(image, la)
    assert fw1.shape == fw2.shape == image.shape and fw1.abs().sum() > 0 and fw2.abs().sum() > 0
    torch.testing.assert_close(ga(image, la), (fw1 + image) * (fw2 + la))


@pytest.mark.parametrize("op", CASCADE_OPS)
def test_cascade_ops_gs_input(op):
    net = tiny_cascade(op).eval()
    image = torch.randn(2, 1, 37, 50)
    with torch.no_grad():
        out, gs_in = capture_gs_input(net, image)
        la_prob = torch.sigmoid(net.gl(image))
    assert out.shape == (2, 2, 37, 50)
    torch.testing.assert_close(out[:, :1], net.gl(image).detach())
    torch.testing.assert_close(out[:, 1:], net.gs(gs_in).detach())
    assert (net.ga is not None) == (op == "adaptive")
    expected = {
        "adaptive": image * la_prob,  # zero-initialised head: A = I * y_l
        "add": image + la_prob,
        "product": image * la_prob,
        "concat": torch.cat([image, la_prob], 1),
        "none": image,
        "roi": image * (la_prob > 0.5).float(),
    }[op]
    torch.testing.assert_close(gs_in, expected)


def test_cascade_multichannel_and_unknown_op():
    net = tiny_cascade("concat", in_channels=2)
    assert net.gs.blocks[0].conv.unit0.conv.in_channels == 3
    assert tiny_cascade("adaptive", in_channels=2)(torch.randn(1, 2, 20, 17)).shape == (1, 2, 20, 17)
    with pytest.raises(ValueError, match="bogus.*adaptive"):
        CascadeNet(cascade="bogus", **TINY)


@pytest.mark.parametrize("op,reaches_gl", [("adaptive", True), ("product", True), ("none", False), ("roi", False)])
def test_scar_gradient_to_gl(op, reaches_gl):
    net = tiny_cascade(op)
    image = torch.randn(2, 1, 24, 24)
    with torch.no_grad():  # make sure the ROI mask is not empty
        net.gl.head.bias.fill_(0.1)
    net(image)[:, 1].sum().backward()
    grads = [p.grad for p in net.gl.parameters()]
    total = sum(float(g.abs().sum()) for g in grads if g is not None)
    assert (total > 0) == reaches_gl
    assert all(p.grad is not None for p in net.gs.parameters())


@pytest.mark.parametrize("size", SIZES)
def test_discriminator_shapes(size):
    b, h, w = size
    disc = JointDiscriminator(in_channels=3, channels=(4, 8, 8, 16), subpixel_out=2)
    logits, feats = disc(torch.randn(b, 3, h, w))
    assert logits.shape == (b, 1, h, w)
    assert [f.shape[1] for f in feats] == [4, 8, 8, 16]
    assert feats[0].shape[2:] == ((h + 1) // 2, (w + 1) // 2)


def test_discriminator_defaults():
    disc = JointDiscriminator()
    assert disc.subpixel.conv_block.out_channels == 3072  # "a sub-pixel convolution with kernels of 3072"
    assert all(c.conv.kernel_size == (5, 5) and c.conv.stride == (2, 2) for c in disc.convs)
    logits, feats = disc(torch.randn(1, 3, 33, 20))
    assert logits.shape == (1, 1, 33, 20)
    assert [f.shape[1] for f in feats] == [32, 64, 128, 256]
    with pytest.raises(ValueError):
        JointDiscriminator(channels=(4, 8), subpixel_scale=2)


@pytest.mark.parametrize("op", ["adaptive", "roi"])
def test_cascade_torchscript(op):
    net = tiny_cascade(op)
    if net.ga is not None:  # non-trivial Fw1, Fw2
        torch.nn.init.normal_(net.ga.head.weight)
    net.eval()
    scripted = torch.jit.script(net)
    image = torch.randn(1, 1, 37, 50)
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), net(image), atol=1e-5, rtol=1e-5)


def test_discriminator_torchscript():
    disc = JointDiscriminator(channels=(4, 8, 8, 16), subpixel_out=2).eval()
    scripted = torch.jit.script(disc)
    x = torch.randn(1, 3, 21, 18)
    with torch.no_grad():
        (a, fa), (b, fb) = scripted(x), disc(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert len(fa) == len(fb) == 4


def test_a_fold_ensemble_is_the_mean_of_its_members_probabilities(tmp_path):
    """load_model with a list of files (the folds of a cross-validation) averages the members' probabilities and
    hands logits on, so the inferers' sigmoid and threshold see the mean probability."""
    from bundle.networks.ensemble import ProbabilityAverage
    from bundle.networks.weights import fold_files, load_model

    torch.manual_seed(0)
    members = [CascadeNet(**TINY).eval() for _ in range(3)]
    for k, member in enumerate(members):
        (tmp_path / f"fold_{k}").mkdir()
        torch.save(member.state_dict(), tmp_path / f"fold_{k}" / "model.pt")
    files = fold_files(tmp_path, [0, 1, 2], "model.pt")
    assert files == [str(tmp_path / f"fold_{k}" / "model.pt") for k in range(3)]
    ensemble = load_model(files, CascadeNet(**TINY))
    assert isinstance(ensemble, ProbabilityAverage) and not ensemble.training
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        expected = torch.stack([torch.sigmoid(m(x)) for m in members]).mean(0)
        torch.testing.assert_close(torch.sigmoid(ensemble(x)), expected, atol=1e-5, rtol=0)
    single = load_model(files[:1], CascadeNet(**TINY))
    assert isinstance(single, CascadeNet)
    with pytest.raises(ValueError, match="no folds"):
        fold_files(tmp_path, [], "model.pt")
