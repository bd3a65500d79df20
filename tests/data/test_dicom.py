"""DICOM series as scans: found in folder trees, read with their exact geometry, and each bad series refused clearly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from bundle.batch import run_batch
from bundle.data.dicom import find_series, kept_locale, read_series, series_records, write_series
from bundle.data.io import read_image, same_geometry, write_image
from bundle.errors import DatasetError
from bundle.inference.scans import read_scan, scan_records


def _volume(depth: int = 8, oblique: bool = True, seed: int = 0) -> sitk.Image:
    array = np.random.default_rng(seed).integers(0, 3000, (depth, 20, 24)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.25, 1.3, 2.5))
    image.SetOrigin((10.0, -20.0, 5.0))
    if oblique:
        image.SetDirection(Rotation.from_euler("xyz", [20, -10, 30], degrees=True).as_matrix().ravel().tolist())
    return image


def _only_error(root, match: str) -> str:
    series, _ = find_series(root)
    with pytest.raises(DatasetError, match=match) as raised:
        read_series(series[0])
    message = str(raised.value)
    assert str(series[0].folder) in message and series[0].uid in message  # names the folder and the series
    return message


@pytest.mark.parametrize("reverse", [False, True])
def test_oblique_series_in_either_slice_order_reads_as_its_nifti_conversion(tmp_path, reverse):
    image = _volume()
    write_series(image, tmp_path / "dicom" / "study" / "lge", reverse=reverse)
    write_image(image, tmp_path / "converted.nii.gz")
    (series,), unreadable = find_series(tmp_path / "dicom")
    assert not unreadable and series.name == "PAT1_S5" and series.description == "3D LGE"
    read = read_series(series)
    nifti = read_image(tmp_path / "converted.nii.gz")
    assert np.array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image))
    assert same_geometry(read, nifti) and same_geometry(read, image)
    assert np.allclose(read.GetDirection(), image.GetDirection(), atol=1e-6)
    assert np.allclose(read.GetOrigin(), image.GetOrigin(), atol=1e-5)


def test_a_folder_of_several_series_gives_one_scan_each_and_a_description_picks(tmp_path):
    write_series(_volume(), tmp_path / "export", uid="1.2.3.10", number=7, description="3D LGE PSIR", prefix="A")
    write_series(_volume(seed=1), tmp_path / "export", uid="1.2.3.11", number=3, description="CINE SAX", prefix="B")
    write_series(_volume(seed=2), tmp_path / "export" / "deeper", uid="1.2.3.12", patient="PAT 2/x", number=7)
    records = scan_records(tmp_path / "export")  # no image files: read as DICOM series
    assert sorted(r["scan"] for r in records) == ["PAT-2-x_S7", "PAT1_S3", "PAT1_S7"]
    lge = scan_records(tmp_path / "export", layout="dicom", series_description=["lge"])
    assert sorted(r["series"] for r in lge) == ["3D LGE", "3D LGE PSIR"]
    with pytest.raises(DatasetError, match="no DICOM series with a description containing"):
        series_records(tmp_path / "export", "T2 STIR")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no scans in the folder"):
        scan_records(tmp_path / "empty")


def test_missing_slice_is_refused(tmp_path):
    files = write_series(_volume(10), tmp_path)
    files[4].unlink()
    assert "missing slices: 1 slice(s) absent" in _only_error(tmp_path, "missing slices")


def _one_slice_moved(tmp_path, slice_index: int, to_z: float) -> None:
    """A series whose slice ``slice_index`` claims the position of (continuous) slice ``to_z``."""
    image = _volume()
    positions = [None] * 8
    positions[slice_index] = "\\".join(
        f"{v:.10g}" for v in image.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, to_z)))
    write_series(image, tmp_path, positions=positions)


def test_duplicated_slice_is_refused(tmp_path):
    _one_slice_moved(tmp_path, 5, 4.0)
    _only_error(tmp_path, "duplicated slices")


def test_non_uniform_slice_spacing_is_refused(tmp_path):
    _one_slice_moved(tmp_path, 7, 7.4)
    _only_error(tmp_path, "non-uniform slice spacing")


def test_differing_orientations_are_refused(tmp_path):
    orientations = [None] * 8
    orientations[3] = "1\\0\\0\\0\\0.995\\0.0998"
    write_series(_volume(oblique=False), tmp_path, orientations=orientations)
    _only_error(tmp_path, "differing orientations")


def test_slices_of_two_acquisitions_under_one_series_are_refused(tmp_path):
    write_series(_volume(), tmp_path)
    other = _volume(1)[2:, :, :]  # one slice of another matrix size, same series UID
    write_series(other, tmp_path, prefix="X", positions=["0\\0\\100"])
    _only_error(tmp_path, "more than one acquisition")


def test_single_slice_and_multi_frame_files_are_not_volumes(tmp_path):
    write_series(_volume(1), tmp_path / "single")
    _only_error(tmp_path / "single", "a single 2D slice")
    multi = tmp_path / "multi"
    multi.mkdir()
    volume = _volume(oblique=False)
    for tag, value in {"0008|0060": "MR", "0020|000e": "1.2.3.99", "0010|0020": "PAT9"}.items():
        volume.SetMetaData(tag, value)
    with kept_locale():
        sitk.WriteImage(volume, str(multi / "enhanced.dcm"))
    _only_error(multi, "multi-frame")


def test_unreadable_and_truncated_files_fail_their_scan_and_the_batch_goes_on(tmp_path):
    write_series(_volume(), tmp_path / "good", uid="1.2.3.1", number=1)
    files = write_series(_volume(), tmp_path / "torn", uid="1.2.3.2", number=2)
    files[3].write_bytes(files[3].read_bytes()[:-300])  # pixel data cut short
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 10)
    records = scan_records(tmp_path)
    rows = {r["scan"]: r for r in run_batch(records, lambda r: {"size": list(read_scan(r).GetSize())})}
    assert rows["PAT1_S1"]["status"] == "ok" and rows["PAT1_S1"]["size"] == [24, 20, 8]
    assert rows["PAT1_S2"]["status"] == "failed" and str(tmp_path / "torn") in rows["PAT1_S2"]["error"]
    assert rows["unreadable-dicom"]["status"] == "failed" and "x.dcm" in rows["unreadable-dicom"]["error"]
    shutil.rmtree(junk)


def test_masks_as_dicom_seg_reference_the_source_series(tmp_path):
    hd = pytest.importorskip("highdicom")
    from bundle.inference.dicom_seg import write_dicom_seg

    image = _volume()
    write_series(image, tmp_path / "series", reverse=True)
    (series,), _ = find_series(tmp_path / "series")
    array = sitk.GetArrayFromImage(read_series(series))
    la, scar = array > 1500, array > 2800
    path = write_dicom_seg(series, la, scar, tmp_path / "out" / "seg.dcm")
    seg = hd.seg.segread(path)
    assert seg.Modality == "SEG" and seg.FrameOfReferenceUID == series.uid + ".9"
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["LA", "scar"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.uid
    sources = [s for s in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
    assert len(sources) == image.GetDepth()
    for k, source_file in enumerate(series.files):  # frame k of each segment is the mask of source slice k
        sop = sitk.ImageFileReader()
        sop.SetFileName(source_file)
        sop.ReadImageInformation()
        frames = seg.get_pixels_by_source_instance([sop.GetMetaData("0008|0018")], segment_numbers=[1, 2])
        assert np.array_equal(frames[0, ..., 0], la[k]) and np.array_equal(frames[0, ..., 1], scar[k])
