"""Networks from files: weights into a network (a state dict, or one entry of a checkpoint), a trained model (TorchScript
or a state dict) and the joint discriminator's exported confidence map, each with a clear error naming the file.
"""

from __future__ import annotations

import copy
import logging
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch

from bundle.errors import DatasetError
from bundle.networks.ensemble import ProbabilityAverage

logger = logging.getLogger(__name__)


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


def load_model(model_file: str | Path | Sequence[str | Path], network_def: torch.nn.Module | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained generator in eval mode: a TorchScript ``.ts`` file, or a ``.pt`` state dict loaded
    into ``network_def``. A list of files (e.g. the five folds of a cross-validation) is their
    :class:`~bundle.networks.ensemble.ProbabilityAverage`.

    Raises:
        DatasetError: a file is missing, or it does not fit ``network_def``.
    """
    if isinstance(model_file, Sequence) and not isinstance(model_file, str):
        if not model_file:
            raise ValueError("model_file: an empty list of models")
        members = [load_model(f, copy.deepcopy(network_def), device) for f in model_file]
        return members[0] if len(members) == 1 else ProbabilityAverage(members).to(device).eval()
    path = Path(model_file)
    if not path.is_file():
        raise DatasetError(path, "model file not found (train first, or set model_file)")
    if path.suffix == ".ts":
        try:
            model = torch.jit.load(str(path), map_location=device)
        except RuntimeError as err:
            raise DatasetError(path, f"not a TorchScript model: {str(err).splitlines()[0]}") from None
    else:
        if network_def is None:
            raise ValueError(f"{path}: a state dict needs the network definition (network_def)")
        model = load_weights(network_def, path)
    return model.to(device).eval()


def fold_files(models_root: str | Path, folds: Sequence[int], name: str) -> list[str]:
    """The files ``<models_root>/fold_<k>/<name>`` of cross-validation ``folds`` (training's ``--fold k`` writes
    them), for a fold ensemble (:func:`load_model` with a list)."""
    if not folds:
        raise ValueError("ensemble: no folds given")
    return [str(Path(models_root) / f"fold_{int(k)}" / name) for k in folds]


def load_discriminator(path: str | Path | None, device: str | torch.device = "cpu") -> torch.nn.Module | None:
    """T's confidence map (:class:`bundle.networks.ConfidenceMap`, TorchScript as training exports it) in eval mode, for
    ``qc_score``; None when ``path`` is None or missing (a model trained without T, e.g. the multi-task U-Net or an
    ablation, has none), with a warning for a missing file.

    Raises:
        DatasetError: the file is not a TorchScript model.
    """
    if path is None:
        return None
    if not Path(path).is_file():
        logger.warning("%s not found: no qc_score (a model trained without the joint discriminator has none)", path)
        return None
    if Path(path).suffix != ".ts":
        raise DatasetError(path, "the discriminator for qc_score must be the TorchScript export (discriminator.ts)")
    return load_model(path, device=device)
