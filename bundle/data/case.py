"""One scan in memory: image, bundle label map, world geometry and identifiers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

ABLATION_STATES = ("pre", "post", "unknown")


@dataclass
class Case:
    """A scan with its labels, in SimpleITK's array order ``(z, y, x)``.

    ``spacing`` and ``origin`` are in millimetres in ITK's ``(x, y, z)`` order and ``direction``
    is the row-major 3 x 3 direction cosine matrix, so ``to_image`` restores the world geometry
    exactly. ``cavity`` and ``wall`` are the LA endocardium and wall when a source provides them
    (the phantoms do; they are needed to write the MICCAI 2018 and LAScarQS layouts).
    """

    image: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    patient: str = ""
    scan: str = ""
    ablation: str = "unknown"
    cavity: np.ndarray | None = None
    wall: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def to_image(self, array: np.ndarray) -> sitk.Image:
        """Wrap an array of this case's shape in a SimpleITK image with this case's geometry."""
        if array.shape != self.image.shape:
            raise ValueError(f"array shape {array.shape} differs from the case's {self.image.shape}")
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction))
        return img
