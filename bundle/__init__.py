"""JAS-GAN and the multi-task LA U-Net for left-atrium and atrial-scar segmentation in LGE CMR.

The package holds everything a MONAI bundle config reaches with ``_target_: bundle....``:
dataset layouts and readers, the synthetic LGE phantoms, the planner, the stage-1 localiser and
stage-2 networks, the GAN trainer (one process or several under torchrun), inference, metrics,
scar quantification, baselines and comparisons.
"""

__version__ = "0.6.0"  # the bundle's version in metadata.json
