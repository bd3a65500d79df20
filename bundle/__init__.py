"""JAS-GAN and the multi-task LA U-Net for left-atrium and atrial-scar segmentation in LGE CMR.

The package holds everything a MONAI bundle config reaches with ``_target_: bundle....``:
dataset layouts and readers, the synthetic LGE phantoms, the planner, and (later) the
networks, the GAN trainer, metrics and scar quantification.
"""

__version__ = "0.1.0"
