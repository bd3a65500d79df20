"""``qc_score``: the joint discriminator T as a quality score of a segmentation.

T learnt, during training, to tell true (LA, scar) maps from Gls's predictions, conditioned on the image (Eq. 3): its
per-pixel confidence map is high where a map looks like a manual label of that image. At inference T (exported with
the model as ``discriminator.ts``, :class:`bundle.networks.ConfidenceMap`) reads each ROI slice holding LA with the
predicted [LA, scar] probabilities, exactly as it read the generator's output in training, and the score is its mean
confidence over the predicted LA's pixels. Whether it ranks bad segmentations low is measured, not assumed
(``jasgan-qc-correlation``; README, "Quality check").
"""

from __future__ import annotations

import torch


@torch.no_grad()
def adversarial_confidence(confidence_map: torch.nn.Module, image: torch.Tensor, probabilities: torch.Tensor,
                           batch_size: int = 8) -> float:
    """T's mean confidence over the predicted LA of one ROI.

    Args:
        confidence_map: T as exported: (B, 3, H, W) cat(I, LA, scar) -> (B, 1, H, W) confidence in [0, 1].
        image: the ROI as stage 2 saw it, (Z, Y, X) or (C, Z, Y, X) (a 2.5D network's slices with their neighbours),
            z-scored with the ROI's moments.
        probabilities: stage 2's [LA, scar] probabilities on the ROI, (2, Z, Y, X).
        batch_size: slices per forward pass.

    Returns:
        The mean confidence over the pixels where the LA probability exceeds 0.5; NaN when there are none.
    """
    la = probabilities[0] > 0.5
    slices = torch.nonzero(la.flatten(1).any(dim=1)).flatten()
    if slices.numel() == 0:
        return float("nan")
    image = image[None] if image.dim() == 3 else image
    total, count = 0.0, 0
    for chunk in slices.split(batch_size):
        x = torch.cat([image[:, chunk].transpose(0, 1), probabilities[:, chunk].transpose(0, 1)], dim=1).float()
        confidence = confidence_map(x)[:, 0]
        mask = la[chunk]
        total += float(confidence[mask].sum())
        count += int(mask.sum())
    return total / count
