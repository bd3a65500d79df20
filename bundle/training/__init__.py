"""Training both stages: the ``prepare`` step, training items, losses, the Ignite trainers, checkpoints and export.

- ``prepare``: data, plan and preprocessing cache before a run (``python -m monai.bundle run prepare``);
- ``datasets``: stage 1's coarse volumes and stage 2's slices and patches, with their MONAI transforms;
- ``losses``: Eq. 3-6 of the paper; ``trainer``: the adversarial trainer (and its base); ``multitask``: the
  multi-task U-Net's trainer and loss;
- ``validation``: per-channel metric outputs and stage 1's ROI recall; ``checkpoints``: atomic checkpoints, best
  model, resume; ``export``: verified TorchScript; ``distributed``: torchrun/DDP; ``tracking``: MLflow, wall time.
"""
