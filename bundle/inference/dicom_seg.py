"""LA and scar masks as a DICOM Segmentation (SEG) referencing the source series, for PACS viewers (highdicom).

Optional: needs ``pip install highdicom`` (pure Python, with pydicom). One binary SEG instance per scan, with two
segments, LA (SNOMED 82471001 Left atrium, the cavity and wall) and scar (SNOMED Scar tissue), one frame per
source slice, in the source series' frame of reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bundle import __version__
from bundle.atomic import atomic_path
from bundle.data.dicom import DicomSeries
from bundle.data.predictions import SEG_FILE
from bundle.errors import DatasetError

SEG_SERIES_NUMBER = 9901
"""Series number of the SEG series (the source series number is kept in the report)."""


def write_dicom_seg(series: DicomSeries, la: np.ndarray, scar: np.ndarray, out: str | Path) -> Path:
    """Write the (z, y, x) masks of ``series`` (in its files' order, as :func:`bundle.data.dicom.read_series` reads
    it) as one DICOM SEG file ``out`` (atomically) referencing every source slice.

    Raises:
        DatasetError: highdicom is missing, or the source slices lack what a SEG needs (e.g. FrameOfReferenceUID).
    """
    try:
        import highdicom as hd
        import pydicom
        from pydicom.sr.codedict import codes
    except ImportError:
        raise DatasetError(series.where, "DICOM SEG output needs highdicom: pip install highdicom") from None
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in series.files]
    if la.shape[0] != len(sources):
        raise ValueError(f"{la.shape[0]} mask slices for {len(sources)} source slices")
    algorithm = hd.AlgorithmIdentificationSequence(name="JAS-GAN", version=__version__,
                                                   family=codes.cid7162.ArtificialIntelligence)

    def segment(number: int, label: str, category, kind) -> hd.seg.SegmentDescription:
        return hd.seg.SegmentDescription(
            segment_number=number, segment_label=label, segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm)

    descriptions = [segment(1, "LA", codes.cid7150.AnatomicalStructure, codes.SCT.LeftAtrium),
                    segment(2, "scar", codes.cid7150.Tissue, codes.SCT.ScarTissue)]
    pixels = np.stack([la, scar], axis=-1).astype(np.uint8)
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="JAS-GAN bundle",
            manufacturer_model_name="JAS-GAN", software_versions=__version__, device_serial_number="0",
            series_description=f"LA and scar of {series.description or 'series ' + series.series_number}"[:64])
    except (ValueError, AttributeError, TypeError) as err:
        raise DatasetError(series.where, f"cannot make a DICOM SEG for it: {err}") from None
    out = Path(out)
    with atomic_path(out, suffix=".dcm") as tmp:
        seg.save_as(tmp)
    return out
