"""Ways to run a trained 2D network on a CPU, and a comparison of their speed and agreement with eager PyTorch.

Each backend turns a network into a callable ``(B, C, H, W) tensor -> logits tensor`` that accepts any batch and
slice size (ROIs differ from scan to scan):

- ``eager``: the module as trained (``torch.no_grad``: its outputs may be updated in place, as MONAI's inferers do).
- ``channels_last``: the module and its input in NHWC memory order (oneDNN's preferred layout).
- ``jit_frozen``: TorchScript, frozen, with ``torch.jit.optimize_for_inference`` (batch norm folded into the
  convolutions, oneDNN fusions).
- ``compile``: ``torch.compile`` (Inductor, C++ kernels; the first call compiles).
- ``onnxruntime``: exported to ONNX (dynamic batch, height, width) and run by ONNX Runtime's CPU provider.
- ``openvino``: converted by OpenVINO from the traced module and compiled for the CPU (dynamic shapes).
- ``bf16``: eager under ``torch.autocast("cpu", torch.bfloat16)`` (fast only with AVX-512 BF16 / AMX).

:func:`compare_backends` times them on one input and measures what each changes: the largest logit difference
from eager fp32 and the share of voxels whose mask (logit > 0) flips.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

BACKENDS = ("eager", "channels_last", "jit_frozen", "compile", "onnxruntime", "openvino", "bf16")

LOGIT_TOLERANCE = 1e-3
"""A backend keeps the masks when its logits stay within this of eager fp32 (float reordering is ~1e-5)."""

Runner = Callable[[torch.Tensor], torch.Tensor]


LIBRARIES = {"onnxruntime": ("onnxruntime", "onnx"), "openvino": ("openvino",)}
"""The optional libraries each backend needs (the others need only torch)."""


def available(backend: str) -> bool:
    """Whether the libraries a backend needs are installed."""
    return all(importlib.util.find_spec(name) is not None for name in LIBRARIES.get(backend, ()))


def _eager(network: torch.nn.Module) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return network(x)

    return run


def _channels_last(network: torch.nn.Module) -> Runner:
    net = network.to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(x.contiguous(memory_format=torch.channels_last)).contiguous()

    return run


def _jit_frozen(network: torch.nn.Module, example: torch.Tensor) -> Runner:
    scripted = network if isinstance(network, torch.jit.ScriptModule) else torch.jit.script(network)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(scripted.eval()))
    return _eager(frozen)


def _compile(network: torch.nn.Module) -> Runner:
    return _eager(torch.compile(network, dynamic=True))


def _onnxruntime(network: torch.nn.Module, example: torch.Tensor, folder: Path) -> Runner:
    import onnxruntime as ort

    path = folder / "model.onnx"
    torch.onnx.export(network, (example,), str(path), input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}, "logits": {0: "b", 2: "h", 3: "w"}},
                      dynamo=False)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(["logits"], {"image": x.contiguous().numpy()})[0])

    return run


def _openvino(network: torch.nn.Module, example: torch.Tensor) -> Runner:
    import openvino as ov

    model = ov.convert_model(network, example_input=example, input=[(-1, example.shape[1], -1, -1)])
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                      "INFERENCE_NUM_THREADS": torch.get_num_threads()})

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(compiled(x.contiguous().numpy())[0].copy())

    return run


def _bf16(network: torch.nn.Module) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return network(x).float()

    return run


def prepare(network: torch.nn.Module, backend: str, example: torch.Tensor, folder: str | Path | None = None) -> Runner:
    """A callable running ``network`` (eval mode, on the CPU) with ``backend``; ``example`` is a typical input
    (used to trace or export; other sizes work too); ``folder`` keeps exported files (a temporary one if None)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if not available(backend):
        raise RuntimeError(f"backend {backend!r} needs {' and '.join(LIBRARIES[backend])}, not installed here "
                           f"(pip install {' '.join(LIBRARIES[backend])})")
    network = network.eval()
    if backend == "eager":
        return _eager(network)
    if backend == "channels_last":
        return _channels_last(network)
    if backend == "jit_frozen":
        return _jit_frozen(network, example)
    if backend == "compile":
        return _compile(network)
    if backend == "bf16":
        return _bf16(network)
    folder = Path(folder or tempfile.mkdtemp(prefix="backend-"))
    if backend == "onnxruntime":
        return _onnxruntime(network, example, folder)
    return _openvino(network, example)


def _time(run: Runner, x: torch.Tensor, repeats: int) -> tuple[list[float], torch.Tensor]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = run(x)
        times.append(time.perf_counter() - start)
    return times, out


def compare_backends(
    network_factory: Callable[[], torch.nn.Module], example: torch.Tensor, backends: Sequence[str] = BACKENDS,
    repeats: int = 5, warmup: int = 2,
) -> list[dict]:
    """Time each backend on ``example`` (median of ``repeats`` after ``warmup`` calls, plus the time to prepare it
    and its first call) and compare its logits with eager fp32: ``max_abs_diff``, ``mask_flips`` (share of voxels
    whose logit changes sign) and ``keeps_masks`` (``max_abs_diff`` <= :data:`LOGIT_TOLERANCE`)."""
    reference = None
    rows = []
    for backend in backends:
        if not available(backend):
            rows.append({"backend": backend, "status": "not installed"})
            continue
        network = network_factory().eval()
        start = time.perf_counter()
        try:
            run = prepare(network, backend, example)
            first = time.perf_counter()
            run(example)
        except Exception as err:  # a backend that cannot take this network is reported, not fatal
            rows.append({"backend": backend, "status": f"failed: {type(err).__name__}: {str(err).splitlines()[0]}"})
            logger.warning("backend %s failed: %s", backend, err)
            continue
        setup, first_call = first - start, time.perf_counter() - first
        _time(run, example, max(0, warmup - 1))
        times, out = _time(run, example, repeats)
        out = out.float()
        if reference is None:
            reference = out if backend == "eager" else prepare(network_factory().eval(), "eager", example)(example)
        diff = float((out - reference).abs().max())
        flips = float(((out > 0) != (reference > 0)).float().mean())
        times.sort()
        rows.append({"backend": backend, "status": "ok", "seconds": round(times[len(times) // 2], 4),
                     "seconds_min": round(times[0], 4), "setup_seconds": round(setup, 2),
                     "first_call_seconds": round(first_call, 2), "max_abs_diff": diff, "mask_flips": flips,
                     "keeps_masks": diff <= LOGIT_TOLERANCE})
    eager = next((r["seconds"] for r in rows if r.get("backend") == "eager" and r["status"] == "ok"), None)
    for row in rows:
        if eager and row.get("status") == "ok":
            row["speedup"] = round(eager / row["seconds"], 3)
    return rows


CPU_BACKEND = "channels_last"
"""Stage 2's default CPU execution (:data:`BACKENDS`): NHWC memory order, 1.4x faster than eager on the
default model, logits within 1e-5, works for TorchScript and state-dict models alike (see README)."""


EXPORTING_BACKENDS = ("onnxruntime", "openvino")
"""Backends that export the eager network, which a TorchScript model cannot give them."""


def runner(network: torch.nn.Module, backend: str = CPU_BACKEND, device: str | torch.device = "cpu",
           model_file: str | Path | None = None, in_channels: int = 1) -> torch.nn.Module | Callable:
    """Stage 2 as it runs at inference: on a CPU through ``backend`` (:data:`BACKENDS`; ``onnxruntime``
    and ``openvino`` need a state-dict model and their library), on a GPU the network itself; ``in_channels``: the
    network's input channels (3 for a 2.5D network), for the example input an exporting backend traces.

    Raises:
        ValueError: an exporting backend asked for a TorchScript model (``model_file`` names it).
    """
    if torch.device(device).type != "cpu" or backend == "eager":
        return network
    if backend in EXPORTING_BACKENDS and isinstance(network, torch.jit.ScriptModule):
        raise ValueError(f"{model_file or 'the model'}: backend {backend!r} exports the network to run it, which a "
                         "TorchScript model cannot do; give the .pt state dict (e.g. --model_file models/model.pt) "
                         f"or use backend {CPU_BACKEND!r}")
    return prepare(network, backend, torch.zeros(2, int(in_channels), 128, 128))
