"""Weights into a network: a state dict (or one entry of a checkpoint), with a clear error naming the file.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from bundle.errors import DatasetError


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
