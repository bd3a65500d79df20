"""bundle.data.layouts: each layout round-trips through write -> read -> load, and bad datasets raise
DatasetError naming the offending file."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from bundle.data.case import Case
from bundle.data.io import read_image, same_geometry, write_image
from bundle.data.labels import compose_label, la_mask, scar_mask
from bundle.data.layouts import (
    CSV_NAME,
    LAYOUTS,
    label_protocol,
    load_case,
    read_dataset,
    write_case,
    write_dataset,
)
from bundle.data.toolkit import axial_dilate, kmeans_scar, toolkit_wall
from bundle.errors import DatasetError
from conftest import TINY_ORIGIN, TINY_SHAPE_ZYX, TINY_SPACING

SHAPE, SPACING, ORIGIN = TINY_SHAPE_ZYX, TINY_SPACING, TINY_ORIGIN
c, s = math.cos(math.radians(25)), math.sin(math.radians(25))
ROTATED = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
RECORD_KEYS = {"image", "endo", "wall", "la", "scar", "patient", "scan", "ablation", "layout"}


def make_case(scan: str = "s1", patient: str = "p1", ablation: str = "post", seed: int = 0) -> Case:
    """An ellipsoid LA cavity, a 2-voxel in-plane wall shell and a bright scar patch in the wall."""
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    cavity = ((z - 5.5) / 4.5) ** 2 + ((y - 32) / 14) ** 2 + ((x - 30) / 18) ** 2 <= 1
    wall = axial_dilate(cavity, 2) & ~cavity
    scar = wall & (x > 40) & (z >= 4) & (z <= 7)
    rng = np.random.default_rng(seed)
    image = rng.normal(60, 8, SHAPE)
    image[cavity] = rng.normal(200, 10, int(cavity.sum()))
    image[wall] = rng.normal(140, 10, int(wall.sum()))
    image[scar] = rng.normal(340, 10, int(scar.sum()))
    return Case(
        image=image.astype(np.float32),
        label=compose_label(cavity | wall, scar),
        spacing=SPACING,
        origin=ORIGIN,
        direction=ROTATED,
        patient=patient,
        scan=scan,
        ablation=ablation,
        cavity=cavity,
        wall=wall,
    )


CASES = [
    make_case("scanB", "patient1", "post", 1),
    make_case("scanA", "patient1", "pre", 2),
    make_case("scanC", "patient2", "unknown", 3),
]


def assert_same_grid(case: Case, original: Case) -> None:
    assert case.image.shape == original.image.shape
    assert same_geometry(case, original)
    np.testing.assert_array_equal(case.image, original.image)
    assert case.label.dtype == np.uint8 and set(np.unique(case.label)) <= {0, 1, 2}


def rewrite(path: str | Path, array: np.ndarray, **geometry) -> None:
    """Overwrite a label file with ``array`` on the test grid, optionally changing its geometry."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(geometry.get("spacing", SPACING))
    image.SetOrigin(geometry.get("origin", ORIGIN))
    image.SetDirection(ROTATED)
    write_image(image, path)


# ------------------------------------------------------------------------------------- round trips


def test_datalist_round_trip(tmp_path):
    root = tmp_path / "dl"
    written = write_dataset(CASES, root, "datalist")
    assert [r["scan"] for r in written] == ["scanB", "scanA", "scanC"]
    text = (root / "dataset.json").read_text()
    assert str(tmp_path) not in text
    entries = json.loads(text)["training"]
    assert entries[0]["image"] == "imagesTr/scanB.nii.gz" and entries[0]["la"] == "labelsTr/scanB_la.nii.gz"
    assert all(not v.startswith("/") for e in entries for k, v in e.items() if k in ("image", "la", "scar"))

    records = read_dataset(root, "datalist")
    assert records == read_dataset(root / "dataset.json", "datalist")
    assert [r["scan"] for r in records] == ["scanA", "scanB", "scanC"]
    assert all(set(r) == RECORD_KEYS and r["layout"] == "datalist" for r in records)
    assert read_image(records[0]["image"]).GetPixelID() == sitk.sitkFloat32
    assert read_image(records[0]["la"]).GetPixelID() == sitk.sitkUInt8
    by_scan = {c.scan: c for c in CASES}
    for record in records:
        case, original = load_case(record), by_scan[record["scan"]]
        assert_same_grid(case, original)
        np.testing.assert_array_equal(case.label, original.label)
        assert (case.patient, case.ablation) == (original.patient, original.ablation)
        assert case.cavity is None and case.wall is None
        assert case.meta["label_protocol"] == label_protocol("datalist")


def test_datalist_optional_keys(tmp_path):
    root = tmp_path / "dl"
    write_dataset(CASES[:1], root, "datalist")
    doc = json.loads((root / "dataset.json").read_text())
    entry = doc["training"][0]
    for key in ("scar", "scan", "patient", "ablation"):
        del entry[key]
    (root / "dataset.json").write_text(json.dumps(doc))
    (record,) = read_dataset(root, "datalist")
    assert (record["scan"], record["patient"], record["ablation"]) == ("scanB", "scanB", "unknown")
    assert record["scar"] is None
    case = load_case(record)
    np.testing.assert_array_equal(case.label, la_mask(CASES[0].label).astype(np.uint8))
    with pytest.raises(ValueError, match="CSV"):
        read_dataset(root, "datalist", csv="x.csv")


def test_lascarqs_round_trip_and_csv_patients(tmp_path):
    root = tmp_path / "lq"
    written = write_dataset(CASES, root, "lascarqs2022")
    assert [r["scan"] for r in written] == ["train_1", "train_2", "train_3"]
    assert sorted(p.name for p in (root / "train_1").iterdir()) == [
        "atriumSegImgMO.nii.gz",
        "enhanced.nii.gz",
        "scarSegImgM.nii.gz",
    ]
    records = read_dataset(root, "lascarqs2022")
    assert records == written
    assert [(r["patient"], r["ablation"]) for r in records] == [
        ("patient1", "post"),
        ("patient1", "pre"),
        ("patient2", "unknown"),
    ]
    for record, original in zip(records, CASES):
        case = load_case(record)
        assert_same_grid(case, original)
        cavity = np.asarray(original.cavity)
        np.testing.assert_array_equal(scar_mask(case.label), scar_mask(original.label))
        np.testing.assert_array_equal(la_mask(case.label), cavity | toolkit_wall(cavity))
        np.testing.assert_array_equal(case.cavity, cavity)
        np.testing.assert_array_equal(case.wall, toolkit_wall(cavity))
    # without the CSV, the patient is the folder and ablation unknown
    (root / CSV_NAME).unlink()
    assert [(r["patient"], r["ablation"]) for r in read_dataset(root, "lascarqs2022")][0] == ("train_1", "unknown")


def test_lascarqs_natural_order_and_next_free_folder(tmp_path):
    for name in ("train_10", "train_2", "train_1"):
        write_case(CASES[0], tmp_path, "lascarqs2022", name=name)
    assert write_case(CASES[0], tmp_path, "lascarqs2022")["scan"] == "train_11"
    assert [r["scan"] for r in read_dataset(tmp_path, "lascarqs2022")] == ["train_1", "train_2", "train_10", "train_11"]


def test_miccai_round_trip_derives_scar(tmp_path):
    root = tmp_path / "miccai"
    write_dataset(CASES, root, "miccai2018")
    folder = root / "Training Set" / "scanA"
    assert sorted(p.name for p in folder.iterdir()) == ["laendo.nrrd", "lawall.nrrd", "lgemri.nrrd"]
    endo_values = np.unique(sitk.GetArrayFromImage(read_image(folder / "laendo.nrrd")))
    assert endo_values.tolist() == [0, 255]
    records = read_dataset(root, "miccai2018")
    assert [(r["scan"], r["patient"], r["ablation"]) for r in records] == [
        ("scanA", "patient1", "pre"),
        ("scanB", "patient1", "post"),
        ("scanC", "patient2", "unknown"),
    ]
    by_scan = {c.scan: c for c in CASES}
    for record in records:
        case, original = load_case(record, scar_labels="toolkit"), by_scan[record["scan"]]
        assert_same_grid(case, original)
        endo, wall = np.asarray(original.cavity), np.asarray(original.wall)
        np.testing.assert_array_equal(la_mask(case.label), endo | wall)
        np.testing.assert_array_equal(scar_mask(case.label), kmeans_scar(case.image, endo, wall))
        np.testing.assert_array_equal(scar_mask(case.label), scar_mask(original.label))  # the phantom's scar is found
        assert case.meta["label_protocol"]["scar"]["source"] == "derived"
        assert case.meta["label_protocol"]["scar_labels"] == "toolkit"
        # the 2018 challenge has no scar labels: by default (and with manual) its LA alone, no scar
        for label_set in (None, "none", "manual"):
            alone = load_case({**record, "scar_labels": label_set})
            np.testing.assert_array_equal(alone.label, la_mask(case.label).astype(np.uint8))
            assert alone.meta["label_protocol"]["scar"]["source"] == "none"


def test_label_sets_decide_where_the_scar_comes_from(tmp_path):
    """manual: the given scar files only; toolkit: those, else the k-means scar of the cavity; none: no scar."""
    write_dataset(CASES, tmp_path, "lascarqs2022")
    record = read_dataset(tmp_path, "lascarqs2022")[1]
    given = load_case(record)  # LAScarQS's default: its manual scar
    assert given.meta["label_protocol"]["scar_labels"] == "manual" and scar_mask(given.label).any()
    np.testing.assert_array_equal(load_case(record, "toolkit").label, given.label)  # a given scar wins
    assert not scar_mask(load_case(record, "none").label).any()
    no_file = {**record, "scar": None}
    assert not scar_mask(load_case(no_file).label).any()  # manual without a file: no scar
    np.testing.assert_array_equal(scar_mask(load_case(no_file, "toolkit").label),
                                  kmeans_scar(given.image, given.cavity, given.wall))
    with pytest.raises(ValueError, match="unknown scar_labels 'auto'"):
        load_case(record, "auto")


def test_miccai_old_train_folder_without_wall(tmp_path):
    write_dataset(CASES[:1], tmp_path, "miccai2018")
    (tmp_path / "Training Set").rename(tmp_path / "train")
    (tmp_path / "train" / "scanB" / "lawall.nrrd").unlink()
    (record,) = read_dataset(tmp_path, "miccai2018")
    assert record["wall"] is None and record["patient"] == "patient1"
    case = load_case(record, scar_labels="toolkit")
    endo = np.asarray(CASES[0].cavity)
    np.testing.assert_array_equal(case.wall, toolkit_wall(endo))
    np.testing.assert_array_equal(la_mask(case.label), endo | toolkit_wall(endo))
    np.testing.assert_array_equal(scar_mask(case.label), kmeans_scar(case.image, endo, toolkit_wall(endo)))


def test_csv_values_patient_column_and_explicit_path(tmp_path):
    root = tmp_path / "m"
    cases = [make_case(f"c{i}", seed=i) for i in range(8)]
    for case in cases:
        write_case(case, root, "miccai2018")
    table = tmp_path / "elsewhere.csv"
    table.write_text(
        "Patient Code,post_ablation?\nc0,YES\nc1,no\nc2,True\nc3,false\nc4,1\nc5,0\nc6,Post\nc7,pre\nzz,yes\n"
    )
    records = read_dataset(root, "miccai2018", csv=str(table))
    assert [r["ablation"] for r in records] == ["post", "pre"] * 4
    assert [r["patient"] for r in records] == [f"c{i}" for i in range(8)]
    assert all(r["ablation"] == "unknown" for r in read_dataset(root, "miccai2018"))
    # the default CSV, with patient grouping and a byte-order mark
    text = "\ufeffPatient Code, post_ablation? ,Patient\nc0,no,P1\nc1,yes,P1\nc2,,\n"
    (root / CSV_NAME).write_text(text, encoding="utf-8")
    records = read_dataset(root, "miccai2018")
    assert [(r["patient"], r["ablation"]) for r in records[:4]] == [
        ("P1", "pre"),
        ("P1", "post"),
        ("c2", "unknown"),
        ("c3", "unknown"),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Patient Code,post_ablation?\nc0,maybe\n", "line 2.*'maybe'"),
        ("Code,post\nc0,yes\n", "needs columns"),
        ("Patient Code,post_ablation?\nc0,yes\nc0,no\n", "twice"),
    ],
)
def test_bad_csv(tmp_path, text, match):
    write_case(CASES[0], tmp_path, "miccai2018")
    (tmp_path / CSV_NAME).write_text(text)
    with pytest.raises(DatasetError, match=match) as err:
        read_dataset(tmp_path, "miccai2018")
    assert CSV_NAME in str(err.value)
    with pytest.raises(DatasetError, match="file not found") as err:
        read_dataset(tmp_path, "miccai2018", csv=str(tmp_path / "none.csv"))
    assert "none.csv" in str(err.value)


def test_label_protocol_is_json():
    for layout in LAYOUTS:
        protocol = json.loads(json.dumps(label_protocol(layout)))
        assert protocol["layout"] == layout and protocol["label_map"]["2"] == "scar"
    assert label_protocol("lascarqs2022")["wall"]["source"] == "derived"
    assert label_protocol("lascarqs2022")["toolkit"]["wall"]["radius_voxels"] == [4, 4, 0]
    with pytest.raises(ValueError, match="unknown layout"):
        label_protocol("nnunet")


# ------------------------------------------------------------------------------------------ writers


def test_writer_rejects_cases_the_layout_cannot_hold(tmp_path):
    bare = make_case()
    bare.cavity = None
    for layout in ("miccai2018", "lascarqs2022"):
        with pytest.raises(ValueError, match="needs case.cavity"):
            write_case(bare, tmp_path, layout)
    with pytest.raises(ValueError, match="safe file name"):
        write_case(make_case("../x"), tmp_path, "datalist")
    with pytest.raises(ValueError, match="twice"):
        write_dataset([make_case("a"), make_case("a")], tmp_path / "d", "datalist")
    with pytest.raises(ValueError, match="unknown layout"):
        write_dataset(CASES, tmp_path, "nifti")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_relative_root(tmp_path, monkeypatch, layout):
    write_dataset(CASES, tmp_path / "ds", layout)
    monkeypatch.chdir(tmp_path)
    records = read_dataset("ds", layout)
    assert len(records) == len(CASES)
    assert all(Path(r["image"]).is_file() for r in records)


def test_lascarqs_writer_drops_scar_beyond_the_toolkit_la(tmp_path):
    far = make_case()
    inside = int((far.label == 2).sum())
    far.label[0, 0, 0] = 2  # scar far from the cavity: LAScarQS cannot hold it
    record = write_case(far, tmp_path, "lascarqs2022")
    loaded = load_case(record)
    assert int((loaded.label == 2).sum()) == inside
    assert loaded.label[0, 0, 0] == 0


# ------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("layout", LAYOUTS)
def test_missing_root_and_empty_folder(tmp_path, layout):
    with pytest.raises(DatasetError, match="not found") as err:
        read_dataset(tmp_path / "absent", layout)
    assert err.value.path == str(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError) as err:
        read_dataset(empty, layout)
    assert str(empty) in err.value.path


def test_empty_training_set_and_empty_datalist(tmp_path):
    (tmp_path / "Training Set").mkdir()
    with pytest.raises(DatasetError, match="no case folders") as err:
        read_dataset(tmp_path, "miccai2018")
    assert err.value.path.endswith("Training Set")
    (tmp_path / "dataset.json").write_text('{"training": []}')
    with pytest.raises(DatasetError, match="no training cases") as err:
        read_dataset(tmp_path, "datalist")
    assert err.value.path.endswith("dataset.json")
    (tmp_path / "dataset.json").write_text('{"training": [')
    with pytest.raises(DatasetError, match="cannot be read"):
        read_dataset(tmp_path, "datalist")


@pytest.mark.parametrize(
    ("layout", "name"),
    [
        ("miccai2018", "laendo.nrrd"),
        ("miccai2018", "lgemri.nrrd"),
        ("lascarqs2022", "scarSegImgM.nii.gz"),
        ("lascarqs2022", "atriumSegImgMO.nii.gz"),
    ],
)
def test_case_folder_missing_file(tmp_path, layout, name):
    (record,) = write_dataset(CASES[:1], tmp_path, layout)
    missing = Path(record["image"]).parent / name
    missing.unlink()
    with pytest.raises(DatasetError, match="file not found") as err:
        read_dataset(tmp_path, layout)
    assert err.value.path == str(missing)


def test_datalist_entry_with_missing_file(tmp_path):
    write_dataset(CASES[:1], tmp_path, "datalist")
    (tmp_path / "labelsTr" / "scanB_la.nii.gz").unlink()
    with pytest.raises(DatasetError, match="file not found") as err:
        read_dataset(tmp_path, "datalist")
    assert err.value.path.endswith("scanB_la.nii.gz")


@pytest.fixture()
def lascarqs_record(tmp_path) -> dict:
    (record,) = write_dataset(CASES[:1], tmp_path, "lascarqs2022")
    return record


def test_truncated_and_random_label(lascarqs_record):
    cavity = Path(lascarqs_record["endo"])
    data = cavity.read_bytes()
    cavity.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="cannot be read") as err:
        load_case(lascarqs_record)
    assert err.value.path == str(cavity)
    scar = Path(lascarqs_record["scar"])
    scar.write_bytes(os.urandom(2000))
    cavity.write_bytes(data)
    with pytest.raises(DatasetError, match="cannot be read") as err:
        load_case(lascarqs_record)
    assert err.value.path == str(scar)


def test_truncated_image(lascarqs_record):
    image = Path(lascarqs_record["image"])
    image.write_bytes(image.read_bytes()[:3000])
    with pytest.raises(DatasetError, match="cannot be read") as err:
        load_case(lascarqs_record)
    assert "enhanced.nii.gz" in str(err.value)


@pytest.mark.parametrize(
    ("array", "geometry", "match"),
    [
        (np.zeros((12, 64, 63), np.uint8), {}, r"size \(63, 64, 12\)"),
        (np.zeros(SHAPE, np.uint8), {"spacing": (2.0, 2.0, 3.0)}, "spacing"),
        (np.zeros(SHAPE, np.uint8), {"origin": (0.0, 30.25, 7.0)}, "origin"),
    ],
    ids=["shape", "spacing", "origin"],
)
def test_label_on_another_grid(lascarqs_record, array, geometry, match):
    rewrite(lascarqs_record["scar"], array, **geometry)
    with pytest.raises(DatasetError, match=match) as err:
        load_case(lascarqs_record)
    assert err.value.path == lascarqs_record["scar"]
    assert "enhanced.nii.gz" in err.value.problem


@pytest.mark.parametrize(
    ("values", "dtype", "listed"),
    [((0, 1, 2), np.uint8, "0, 1, 2"), ((0, -1), np.int16, "-1, 0"), ((0, 0.5), np.float32, "0, 0.5")],
    ids=["three-values", "negative", "fractional"],
)
def test_mask_with_bad_values(lascarqs_record, values, dtype, listed):
    array = np.zeros(SHAPE, dtype)
    for i, v in enumerate(values):
        array[i] = v
    rewrite(lascarqs_record["endo"], array)
    with pytest.raises(DatasetError, match="binary mask") as err:
        load_case(lascarqs_record)
    assert err.value.path == lascarqs_record["endo"]
    assert f"[{listed}]" in err.value.problem


def test_mask_with_any_single_value_is_accepted(lascarqs_record):
    cavity = np.asarray(CASES[0].cavity)
    rewrite(lascarqs_record["endo"], (cavity * 420).astype(np.int16))
    case = load_case(lascarqs_record)
    np.testing.assert_array_equal(case.cavity, cavity)


def test_scar_outside_la(lascarqs_record, tmp_path):
    scar = scar_mask(CASES[0].label).astype(np.uint8)
    scar[0, :2, :3] = 1
    rewrite(lascarqs_record["scar"], scar)
    with pytest.raises(DatasetError, match="6 of .* scar voxels lie outside the LA") as err:
        load_case(lascarqs_record)
    assert err.value.path == lascarqs_record["scar"]
    # the same rule in the datalist layout
    root = tmp_path / "dl"
    (record,) = write_dataset(CASES[:1], root, "datalist")
    rewrite(record["scar"], scar)
    with pytest.raises(DatasetError, match="6 of .* scar voxels lie outside the LA") as err:
        load_case(record)
    assert err.value.path.endswith("scanB_scar.nii.gz")


def test_miccai_bad_endo_values(tmp_path):
    (record,) = write_dataset(CASES[:1], tmp_path, "miccai2018")
    array = np.zeros(SHAPE, np.uint8)
    array[3], array[4] = 1, 255
    rewrite(record["endo"], array)
    with pytest.raises(DatasetError, match=r"found values \[0, 1, 255\]") as err:
        load_case(record)
    assert err.value.path.endswith("laendo.nrrd")
    shutil.rmtree(tmp_path / "Training Set" / "scanB")
    with pytest.raises(DatasetError, match="no case folders"):
        read_dataset(tmp_path, "miccai2018")
