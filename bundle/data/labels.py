"""The bundle's label map: one integer volume, 0 background, 1 LA (cavity + wall), 2 scar.

Scar always lies inside the LA, so ``LA = label > 0`` and ``scar = label == 2``.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = 0
LA = 1
SCAR = 2
LABEL_NAMES = {BACKGROUND: "background", LA: "left_atrium", SCAR: "scar"}


def compose_label(la: np.ndarray, scar: np.ndarray | None = None) -> np.ndarray:
    """Build the label map from a binary LA mask (cavity + wall) and an optional binary scar mask.

    The caller checks that the scar lies inside the LA; here scar simply wins where both are set.
    """
    label = np.where(np.asarray(la) > 0, LA, BACKGROUND).astype(np.uint8)
    if scar is not None:
        label[np.asarray(scar) > 0] = SCAR
    return label


def la_mask(label: np.ndarray) -> np.ndarray:
    """Binary LA (cavity + wall, scar included) of a label map."""
    return np.asarray(label) > BACKGROUND


def scar_mask(label: np.ndarray) -> np.ndarray:
    """Binary scar of a label map."""
    return np.asarray(label) == SCAR
