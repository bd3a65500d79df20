"""Timing and memory of each stage (``jasgan-benchmark <planning|training|inference|backends|dicom|surface>``)."""
