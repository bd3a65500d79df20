"""Small pieces the training config wires together: metric outputs, weights, mixed precision, export, timing."""

from __future__ import annotations

import logging
import pickle
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from monai.handlers import from_engine
from monai.networks.utils import convert_to_torchscript

from bundle.atomic import atomic_path
from bundle.errors import DatasetError

logger = logging.getLogger(__name__)

TORCHSCRIPT_ATOL = 1e-5
"""The exported TorchScript model must reproduce the checkpoint's logits within this tolerance."""


def channel_output(channel: int) -> Callable:
    """Output transform giving metrics one channel (0 = LA, 1 = scar) of decollated ``pred``/``label``."""

    def transform(output: list[dict]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        preds, labels = from_engine(["pred", "label"])(output)
        return [p[channel : channel + 1] for p in preds], [y[channel : channel + 1] for y in labels]

    return transform


def load_weights(network: torch.nn.Module, checkpoint: str | Path, key: str | None = None) -> torch.nn.Module:
    """Load a state dict (or ``checkpoint[key]``) into ``network``; a clear error naming the file on mismatch."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DatasetError(checkpoint, "checkpoint not found")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, zipfile.BadZipFile) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DatasetError(checkpoint, f"not a readable PyTorch state dict (a TorchScript model needs the .ts "
                                       f"suffix): {reason}") from None
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            raise DatasetError(checkpoint, f"checkpoint has no {key!r} entry")
        state = state[key]
    try:
        network.load_state_dict(state)
    except RuntimeError as err:
        raise DatasetError(checkpoint, f"checkpoint does not fit the configured network: {err}") from None
    return network


def initial_weights(network: torch.nn.Module, checkpoint: str | Path | None) -> torch.nn.Module:
    """``network`` with the weights of ``checkpoint`` (e.g. a trained EDN for RN+LA), or as built when None."""
    return network if checkpoint is None else load_weights(network, checkpoint)


def mixed_precision(amp: bool, device: torch.device | str) -> bool:
    """Whether to train and validate in mixed precision: ``amp`` on a CUDA device; on a CPU a requested ``amp``
    is ignored with a warning (CPU autocast is slower than float32 for these convolutions)."""
    if amp and torch.device(device).type != "cuda":
        logger.warning("amp: true is ignored on %s: mixed precision needs a CUDA GPU; training in float32", device)
        return False
    return bool(amp)


def export_torchscript(
    network: torch.nn.Module, checkpoint: str | Path, out: str | Path, patch_size: Sequence[int], in_channels: int = 1,
) -> Path:
    """Load the best checkpoint into ``network``, script it and save ``out``, verified against eager output.

    The check runs one random batch of the plan's patch size through both and requires equality
    within ``TORCHSCRIPT_ATOL`` (MONAI's ``convert_to_torchscript(verify=True)``). The file appears
    only when the check passed.
    """
    network = load_weights(network, checkpoint).cpu().eval()
    example = torch.randn(2, in_channels, *patch_size)
    out = Path(out)
    with atomic_path(out, suffix=".ts") as tmp:
        convert_to_torchscript(network, tmp, verify=True, inputs=[example], device=torch.device("cpu"),
                               rtol=0.0, atol=TORCHSCRIPT_ATOL)
    logger.info("exported %s (TorchScript, verified within %g of %s)", out, TORCHSCRIPT_ATOL, checkpoint)
    return out


class Stopwatch:
    """Logs the wall time of the run from construction (config start) to ``report()`` (finalize)."""

    def __init__(self, name: str = "training") -> None:
        self.name = name
        self.start = time.perf_counter()

    def report(self) -> float:
        seconds = time.perf_counter() - self.start
        logger.info("%s workflow wall time: %.1f s", self.name, seconds)
        return seconds
