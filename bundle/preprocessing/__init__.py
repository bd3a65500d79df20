"""A plan applied to scans: what the networks see, in training and at inference alike.

- ``image``: in-plane resampling to the plan's spacing and per-volume z-score;
- ``roi``: the region of interest stage 2 segments (boxes, margins, the ROI's own z-score);
- ``cache``: the preprocessed train and validation scans kept on disk per plan, keyed by the plan and the files.
"""
