"""Stage 2's test-time rotations (bundle/inference/rotations.py) and where the two-stage inferer uses them."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bundle.benchmarks.inference import time_scans
from bundle.inference.localizer import SEARCHED
from bundle.inference.rotations import DEFAULT_ROTATIONS_DEG, RotationAverage, rotate
from bundle.inference.two_stage import TwoStageInferer
from tests.inference.test_localizer import SPACING, CountingNet, _missed, sign_net


def _disc(size: int = 48, radius: float = 12.0, centre: tuple[float, float] | None = None) -> torch.Tensor:
    cy, cx = centre or ((size - 1) / 2, (size - 1) / 2)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    return (((yy - cy) ** 2 + (xx - cx) ** 2).sqrt() < radius).float()[None, None]


def test_a_quarter_turn_moves_a_pixel_where_a_quarter_turn_goes():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 1, 4] = 1.0   # above the centre (4, 4)
    turned = rotate(x, math.pi / 2)
    assert turned[0, 0].flatten().argmax().item() in {4 * 9 + 1, 4 * 9 + 7}   # now level with the centre, at a side
    torch.testing.assert_close(rotate(turned, -math.pi / 2), x, atol=1e-5, rtol=0)


def test_zero_alone_is_the_network():
    x = torch.randn(2, 1, 16, 16)
    net = lambda t: torch.cat([3 * t, -t], dim=1)  # noqa: E731
    torch.testing.assert_close(RotationAverage(net, [0])(x), net(x), atol=1e-4, rtol=1e-4)


def test_the_mean_of_the_turned_copies_of_a_network_that_turns_with_the_slice_is_the_network():
    """A pixel-wise network (its answer turns with the slice) on a centred disc: every turned copy, turned back, gives
    the disc again, so the mean is the network's own answer, up to the resampling at the disc's edge."""
    disc = _disc()
    net = lambda t: 20 * (t - 0.5)  # noqa: E731
    mean = torch.sigmoid(RotationAverage(net, [-20, 0, 20])(disc)) > 0.5
    assert (mean ^ (disc > 0.5)).sum() <= 8   # a few edge pixels of 450
    assert RotationAverage(net, [-20, 0, 20])(disc).shape == disc.shape


def test_the_mean_leaves_out_the_corners_a_turned_copy_never_saw():
    """A network that calls everything LA: the turned copies see only the turned slice, so the corners they miss get
    only the unturned copy's answer (still LA), never the zero outside the turned slice."""
    x = torch.zeros(1, 1, 32, 32)
    everywhere = lambda t: torch.full_like(t, 10.0)  # noqa: E731
    prob = torch.sigmoid(RotationAverage(everywhere, [-30, 0, 30])(x))
    assert prob.min().item() > 0.99
    # without the unturned copy the corners no copy saw are background, not half LA
    turned_only = torch.sigmoid(RotationAverage(everywhere, [-30, 30])(x))
    assert turned_only[0, 0, 0, 0].item() < 1e-3 and turned_only[0, 0, 16, 16].item() > 0.99


def test_an_off_centre_network_answer_is_averaged_not_copied():
    """A network that answers the same fixed off-centre spot whatever it sees: the turned copies put that spot
    elsewhere after turning back, so the mean over three is below one half there (it is not equivariant)."""
    spot = _disc(radius=3.0, centre=(10.0, 10.0))
    fixed = lambda t: 20 * (spot.expand_as(t) - 0.5)  # noqa: E731
    prob = torch.sigmoid(RotationAverage(fixed, [-20, 0, 20])(torch.zeros(1, 1, 48, 48)))
    assert prob[0, 0, 10, 10].item() == pytest.approx(1 / 3, abs=0.05)


@pytest.mark.parametrize("angles", [[], [0, 120], [float("nan")]])
def test_bad_angles_are_refused(angles):
    with pytest.raises(ValueError, match="angle"):
        RotationAverage(sign_net, angles)
    if angles:
        with pytest.raises(ValueError, match="angle"):
            TwoStageInferer(None, rotations_deg=angles)


def test_the_inferer_turns_every_roi_pass_but_never_the_search_windows():
    v, la, localizer = _missed()
    plain, turned = CountingNet(), CountingNet()
    TwoStageInferer(localizer, roi_growths=3, context=(32, 32))(v, plain, spacing=SPACING)
    inferer = TwoStageInferer(localizer, roi_growths=3, context=(32, 32), rotations_deg=[-20, 0, 20])
    out = inferer(v, turned, spacing=SPACING)
    final = inferer.last_location
    assert final.status == SEARCHED and final.roi.recall(la) == 1.0
    windows = 15   # the search's windows (test_localizer's search test): once each, turned or not
    assert turned.calls - windows == 3 * (plain.calls - windows)
    assert torch.equal(out[0, 0] > 0, torch.as_tensor(la))   # the block, turned and turned back, is the block
    assert TwoStageInferer(localizer, rotations_deg=[0]).rotations_deg == (0.0,)


def test_a_crop_through_the_inferer_with_rotations_matches_the_plain_pass_on_a_round_la():
    v = _disc(size=40, radius=10.0).repeat(1, 1, 1, 1)[:, :, None].repeat(1, 1, 4, 1, 1)   # (1, 1, 4, 40, 40)
    plain = TwoStageInferer(None)(v, sign_net)
    turned = TwoStageInferer(None, rotations_deg=[-20, 0, 20])(v, sign_net)
    agree = ((plain[0, 0] > 0) == (turned[0, 0] > 0)).float().mean().item()
    assert agree > 0.99 and np.isfinite(turned.numpy()).all()


def test_the_configs_and_the_benchmark_share_one_default():
    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("inference.yaml", "train.yaml"):
        assert tuple(yaml.safe_load((root / name).read_text())["tta_rotations_deg"]) == DEFAULT_ROTATIONS_DEG, name
    assert inspect.signature(time_scans).parameters["rotations_deg"].default == DEFAULT_ROTATIONS_DEG
