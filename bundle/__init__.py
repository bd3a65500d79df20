"""JAS-GAN and the multi-task LA U-Net for left-atrium and atrial-scar segmentation in LGE CMR.

The packages follow the data flow, and a MONAI bundle config reaches each with ``_target_: bundle....``:

- ``data``: dataset layouts and readers, label protocol, LA wall, DICOM in, prediction folders, the phantoms;
- ``planning``: the fingerprint, the rule-based plan (one function per decision) and the patient-level split;
- ``preprocessing``: the plan applied to a scan (resampling, z-score, ROI) and the on-disk cache;
- ``networks``: Gl, Ga, Gs, Gls, T, the multi-task U-Net and the stage-1 localiser;
- ``training``: the ``prepare`` step, training items, losses, trainers, checkpoints, export, torchrun, tracking;
- ``inference``: stage 1 and stage 2 on whole scans, post-processing, CPU backends, DICOM SEG out;
- ``quantification``: scar burden, the scar map on the LA surface and the quality check, for any masks;
- ``evaluation``: metrics, statistics, evaluation of a split, baselines and method comparison;
- ``benchmarks``: timing of each stage; ``cli``: the command-line tools (``jasgan-*``).

Shared by all: ``errors`` (bad input, refused output), ``ownership`` (the bundle writes into, replaces and deletes
only what it wrote itself), ``atomic`` (files that appear complete or not at all) and ``batch`` (a batch of scans
whose failures are reported while the others go on).
"""

__version__ = "0.8.11"  # the bundle's version in metadata.json
