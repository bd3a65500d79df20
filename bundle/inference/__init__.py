"""Segmenting whole scans: stage 1 finds the LA's region, stage 2 segments it, masks go back on the scan's grid.

- ``scans``: what to segment (files, DICOM series, a dataset split); ``segmenter``: one scan end to end and the
  batch over many, with the report;
- ``localizer``: stage 1 on a coarse grid; ``two_stage``: stage 1 then stage 2 on the ROI, pasted back (also the
  validation inferer in training); ``postprocess``: closing, largest component of LA or scar, scar inside the LA;
- ``backends``: CPU execution backends for stage 2 and the ``runner`` that picks one; ``dicom_seg``: DICOM Segmentation
  out.
"""
