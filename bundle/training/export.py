"""Small pieces the training config wires together: metric outputs, weights, mixed precision, export, timing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.networks.utils import convert_to_torchscript

from bundle.atomic import atomic_path
from bundle.networks.weights import load_weights

logger = logging.getLogger(__name__)

TORCHSCRIPT_ATOL = 1e-5
"""The exported TorchScript model must reproduce the checkpoint's logits within this tolerance."""


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


