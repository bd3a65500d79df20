"""bundle.inference.backends: every installed CPU backend runs stage 2 on any ROI size and keeps the eager logits."""

from __future__ import annotations

import pytest
import torch

from bundle.inference.backends import BACKENDS, LOGIT_TOLERANCE, available, compare_backends, prepare
from bundle.networks import CascadeNet

FAST = ("eager", "channels_last", "jit_frozen", "onnxruntime", "openvino")
"""Backends cheap enough to build in a test (``compile`` takes minutes, ``bf16`` changes the logits by design)."""


def _network() -> CascadeNet:
    torch.manual_seed(0)
    net = CascadeNet(1, (4, 8, 16), gs_width=4, lstm_channels=4)
    for module in net.modules():  # non-trivial batch-norm statistics, so folding them is really tested
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.mark.parametrize("backend", FAST)
def test_backend_matches_eager_on_other_roi_sizes(backend):
    if not available(backend):
        pytest.skip(f"{backend} is not installed")
    example = torch.randn(2, 1, 32, 32)
    run = prepare(_network(), backend, example)
    with torch.no_grad():
        for shape in ((2, 1, 32, 32), (3, 1, 48, 64), (1, 1, 16, 80)):  # other batch and ROI sizes than traced
            x = torch.randn(*shape)
            expected = _network()(x)
            got = run(x)
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) <= LOGIT_TOLERANCE


def test_compare_reports_speed_and_agreement():
    rows = compare_backends(_network, torch.randn(2, 1, 32, 32), ("eager", "jit_frozen", "nope"), repeats=2, warmup=1)
    eager, frozen, unknown = rows
    assert eager["status"] == "ok" and eager["max_abs_diff"] == 0.0 and eager["speedup"] == 1.0
    assert frozen["keeps_masks"] and frozen["mask_flips"] == 0.0 and frozen["seconds"] > 0
    assert unknown["status"] == "not installed" or unknown["status"].startswith("failed")
    with pytest.raises(ValueError, match="unknown backend"):
        prepare(_network(), "nope", torch.randn(1, 1, 8, 8))
    assert set(FAST) <= set(BACKENDS)


def test_inference_default_backend_runs_torchscript_models_within_tolerance():
    """What configs/inference.yaml runs on a CPU: the exported model.ts through the default backend."""
    from bundle.inference.backends import CPU_BACKEND, runner

    scripted = torch.jit.script(_network())
    run = runner(scripted, CPU_BACKEND, "cpu")
    x = torch.randn(3, 1, 48, 64)
    with torch.no_grad():
        expected = _network()(x)
    got = run(x)
    assert got.shape == expected.shape and float((got - expected).abs().max()) <= LOGIT_TOLERANCE
    assert runner(scripted, "eager", "cpu") is scripted


def test_a_torchscript_model_with_an_exporting_backend_is_a_clear_error():
    from bundle.inference.backends import runner

    scripted = torch.jit.script(_network())
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(ValueError, match=r"models/model\.ts: backend '\w+' exports the network.*\.pt state dict"):
            runner(scripted, backend, "cpu", "models/model.ts")


def test_a_missing_backend_library_is_named_with_its_install_command(monkeypatch):
    from bundle.inference import backends

    monkeypatch.setattr(backends.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"'onnxruntime' needs onnxruntime and onnx.*pip install onnxruntime onnx"):
        prepare(_network(), "onnxruntime", torch.randn(1, 1, 8, 8))
