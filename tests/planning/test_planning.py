"""Planner: fingerprint numbers, rule-based decisions, patient-level split, plan files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bundle.data.case import Case
from bundle.data.labels import LA, SCAR
from bundle.data.wall import scar_burden
from bundle.errors import DatasetError
from bundle.planning import (
    decision_values,
    fingerprint_case,
    fingerprint_dataset,
    load_plan,
    make_plan,
    save_plan,
    split_patients,
)
from bundle.planning import rules as R
from bundle.planning.planner import PLAN_KEYS, is_crop

BG, LA_I, SCAR_I = 10.0, 50.0, 90.0


def box_case(
    scan="s1",
    patient="p1",
    ablation="pre",
    shape=(12, 64, 64),
    spacing=(2.0, 2.0, 4.0),
    box=((3, 8), (20, 35), (10, 30)),  # (z0, z1), (y0, y1), (x0, x1), half-open
    scar_face=False,
    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
) -> Case:
    """A box LA of intensity 50 in a background of 10; optional scar (90) on the box's x0 face."""
    image = np.full(shape, BG, np.float32)
    label = np.zeros(shape, np.uint8)
    (z0, z1), (y0, y1), (x0, x1) = box
    label[z0:z1, y0:y1, x0:x1] = LA
    image[label > 0] = LA_I
    if scar_face:
        label[z0:z1, y0:y1, x0] = SCAR
        image[label == SCAR] = SCAR_I
    return Case(
        image=image, label=label, spacing=spacing, direction=direction, patient=patient, scan=scan, ablation=ablation
    )


def square_la_case(scan, extent_mm, spacing_mm, size_px, patient=None, ablation="post") -> Case:
    """Two slices of ``size_px`` squared at ``spacing_mm`` with a centred square LA of ``extent_mm``."""
    n = int(round(extent_mm / spacing_mm))
    a = (size_px - n) // 2
    return box_case(
        scan=scan,
        patient=patient or scan,
        ablation=ablation,
        shape=(2, size_px, size_px),
        spacing=(spacing_mm, spacing_mm, 2.5),
        box=((0, 2), (a, a + n), (a, a + n)),
    )


# ---------------------------------------------------------------------------------------------
# fingerprint
# ---------------------------------------------------------------------------------------------


def test_fingerprint_case_numbers_by_hand():
    case = box_case(scar_face=True)
    fp = fingerprint_case(case)
    assert fp["shape"] == [64, 64, 12]
    assert fp["spacing"] == [2.0, 2.0, 4.0]
    assert fp["orientation"] == "LPS"
    assert (fp["scan"], fp["patient"], fp["ablation"]) == ("s1", "p1", "pre")
    # box: 20 x-voxels * 2 mm, 15 y-voxels * 2 mm, 5 slices * 4 mm
    assert fp["la_extent_mm"] == [40.0, 30.0, 20.0]
    assert fp["la_extent_in_plane_mm"] == 40.0
    assert fp["la_voxels"] == 20 * 15 * 5
    assert fp["la_ml"] == pytest.approx(1500 * 16 / 1000)
    assert fp["la_centre_voxel"] == [19.5, 27.0, 5.0]
    assert fp["la_bbox_voxel"] == {"min": [10, 20, 3], "max": [29, 34, 7]}
    assert fp["la_slices"] == 5
    # scar: the x0 face, 15 x 5 voxels; wall (1-voxel erosion at 2 mm) = (20*15 - 18*13) * 5 = 330
    assert fp["scar_voxels"] == 75
    assert fp["scar_percent"] == pytest.approx(100 * 75 / 330)
    assert fp["scar_percent"] == pytest.approx(scar_burden(case.label, case.spacing)["scar_percent"])
    # intensities: 75 scar voxels at 90, 1425 LA voxels at 50, the rest at 10
    full = case.image.astype(np.float64)
    im = fp["intensity"]["image"]
    assert im["mean"] == pytest.approx(full.mean())
    assert im["std"] == pytest.approx(full.std(), rel=1e-6)
    assert (im["min"], im["max"], im["p50"]) == (BG, SCAR_I, BG)
    la = fp["intensity"]["la"]
    assert la["mean"] == pytest.approx((75 * 90 + 1425 * 50) / 1500)
    assert la["std"] == pytest.approx(np.std([90.0] * 75 + [50.0] * 1425))
    assert (la["min"], la["max"], la["p50"], la["p99.5"]) == (LA_I, SCAR_I, LA_I, SCAR_I)
    assert fp["intensity"]["la_zscore"]["p50"] == pytest.approx((LA_I - full.mean()) / full.std(), rel=1e-6)
    json.dumps(fp, allow_nan=False)


def test_fingerprint_orientation_hash_and_errors():
    flipped = box_case(direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    assert fingerprint_case(flipped)["orientation"] == "RAS"

    a, b = box_case(), box_case(scan="s2")
    b.image = b.image * 3  # same label, other image
    assert fingerprint_case(a)["label_sha1"] == fingerprint_case(b)["label_sha1"]
    c = box_case()
    c.label[0, 0, 0] = LA
    assert fingerprint_case(c)["label_sha1"] != fingerprint_case(a)["label_sha1"]
    d = box_case()
    d.label, d.image = d.label.reshape(12, 32, 128), d.image.reshape(12, 32, 128)  # same bytes
    assert fingerprint_case(d)["label_sha1"] != fingerprint_case(a)["label_sha1"]

    empty = box_case(box=((0, 0), (0, 0), (0, 0)))
    fp = fingerprint_case(empty)
    assert fp["la_voxels"] == 0 and fp["la_centre_voxel"] is None and fp["intensity"]["la"] is None

    bad = box_case()
    bad.label = bad.label[:, :, :10]
    with pytest.raises(DatasetError, match="differs from image shape"):
        fingerprint_case(bad)
    nan = box_case()
    nan.image[0, 0, 0] = np.nan
    with pytest.raises(DatasetError, match="NaN"):
        fingerprint_case(nan)


def test_fingerprint_dataset_summary():
    cases = [
        box_case("a1", "A", "pre", scar_face=False),
        box_case("a2", "A", "post", scar_face=True, box=((2, 10), (0, 30), (0, 30))),  # LA at the image edge
        box_case("b1", "B", "unknown", spacing=(1.0, 1.0, 2.0), box=((0, 0), (0, 0), (0, 0))),  # no LA
    ]
    fps = [fingerprint_case(c) for c in cases]
    # the LA touching the border: scar burden on the crop equals the full-volume value
    assert fps[1]["scar_percent"] == pytest.approx(scar_burden(cases[1].label, cases[1].spacing)["scar_percent"])
    assert fps[1]["scar_percent"] > 0

    fp = fingerprint_dataset(c for c in cases)  # a one-shot generator
    s = fp["summary"]
    assert [c["scan"] for c in fp["cases"]] == ["a1", "a2", "b1"]
    assert (s["n_scans"], s["n_patients"], s["n_scans_without_la"], s["n_scans_with_scar"]) == (3, 2, 1, 1)
    assert s["ablation"] == {"pre": 1, "post": 1, "unknown": 1}
    assert s["spacing"]["median"] == [2.0, 2.0, 4.0]
    assert s["spacing"]["min"] == [1.0, 1.0, 2.0]
    assert s["shape"]["median"] == [64, 64, 12]
    assert s["orientations"] == {"LPS": 3}
    n1, n2 = fps[0]["la_voxels"], fps[1]["la_voxels"]
    pooled = (n1 * fps[0]["intensity"]["la"]["mean"] + n2 * fps[1]["intensity"]["la"]["mean"]) / (n1 + n2)
    assert s["la_intensity"]["mean"] == pytest.approx(pooled)
    assert (s["la_intensity"]["min"], s["la_intensity"]["max"]) == (LA_I, SCAR_I)
    assert s["la_extent_mm"]["x"]["max"] == 60.0 and s["la_extent_mm"]["x"]["min"] == 40.0
    assert s["scar_percent"]["max"] == pytest.approx(fps[1]["scar_percent"])
    assert s["scar_percent"]["min"] == 0.0
    json.dumps(fp, allow_nan=False)
    with pytest.raises(ValueError):
        fingerprint_dataset([])


# ---------------------------------------------------------------------------------------------
# decisions
# ---------------------------------------------------------------------------------------------


def plan_for(cases, profile="paper", **kw):
    return make_plan(iter(cases), "t", {"root": "data/t", "layout": "x"}, {"la": 1}, profile=profile, **kw)


def _check_patch(d):
    patch, spacing = d["patch_size"]["value"], d["target_spacing"]["value"]
    needed = d["patch_size"]["inputs"]["needed_field_mm"]
    assert all(p % R.NETWORK_DOWNSAMPLING == 0 for p in patch)
    assert patch[0] * spacing[1] >= needed - 1e-6 and patch[1] * spacing[0] >= needed - 1e-6
    for name, dec in d.items():
        assert set(dec) >= {"value", "rule", "reason"}, name
        assert dec["rule"] and dec["reason"], name
    return patch, spacing


def test_decisions_fine_spacing_paper_profile():
    # LA extents 60, 80, 100 mm at 0.625 mm on 576 x 576: p95 = 98 mm, + 2 * 30 mm = 158 mm = 253 px -> 256
    cases = [square_la_case(f"s{i}", e, 0.625, 576) for i, e in enumerate((60, 80, 100))]
    plan = plan_for(cases)
    d = plan["decisions"]
    patch, spacing = _check_patch(d)
    assert spacing == [0.625, 0.625]
    assert d["patch_size"]["inputs"]["la_extent_in_plane_percentile_mm"] == pytest.approx(98.0)
    assert patch == [256, 256]
    assert d["batch_size"]["value"] == 8
    assert d["network"]["value"] == {
        "gl_widths": [32, 64, 128, 256, 512], "gl_poolings": 4, "gs_width": 32, "lstm_channels": 32,
    }
    assert "PATCH_MARGIN_MM" in d["patch_size"]["rule"] and "TARGET_SPACING" in d["target_spacing"]["rule"]
    norm = d["normalization"]["value"]
    assert norm["scheme"] == "zscore_per_volume" and norm["clip"] is False
    lo, hi = norm["clip_bounds_zscore"]
    assert lo < hi
    assert plan["profile"] == "paper"
    json.dumps(plan, allow_nan=False)


def test_each_decision_has_its_own_function_and_the_plan_composes_them():
    from bundle.planning.planner import (
        decide_augmentation,
        decide_batch,
        decide_localizer,
        decide_network,
        decide_normalization,
        decide_patch,
        decide_resampling,
        decide_roi,
        decide_spacing,
        plan_decisions,
    )

    cases = [square_la_case(f"s{i}", e, 0.625, 576) for i, e in enumerate((60, 80, 100))]
    fingerprint = plan_for(cases)["fingerprint"]
    for profile in ("paper", "cpu"):
        patch = decide_patch(fingerprint, profile)["value"]
        spacing = decide_spacing(fingerprint, profile)["value"]
        parts = {"target_spacing": decide_spacing(fingerprint, profile), "patch_size": decide_patch(fingerprint, profile),
                 "batch_size": decide_batch(patch, profile), "network": decide_network(patch, profile),
                 "normalization": decide_normalization(fingerprint), "localizer": decide_localizer(fingerprint, profile)}
        parts["roi"] = decide_roi(fingerprint, parts)
        parts["resampling"] = decide_resampling(fingerprint, spacing)
        parts["augmentation"] = decide_augmentation(patch, parts["localizer"]["value"]["patch_size"])
        assert plan_decisions(fingerprint, profile) == parts
        assert all(d["rule"] and d["reason"] for d in parts.values())
    with pytest.raises(ValueError, match="unknown profile"):
        decide_batch([128, 128], "laptop")


def test_decisions_coarser_spacing_and_median_rule():
    # 3 scans at 0.7 mm (LA 63, 84, 98 mm = 90, 120, 140 px) and 2 at 0.625 mm (LA 100 mm): the median
    # spacing is 0.7; p95 LA = 100 mm, + 2 * 30 = 160 mm = 229 px -> 240; batch round(8 * 256^2 / 240^2) = 9
    cases = [square_la_case(f"s{i}", e, 0.7, 480) for i, e in enumerate((63, 84, 98))]
    cases += [square_la_case("x0", 100, 0.625, 512), square_la_case("x1", 100, 0.625, 512)]
    d = plan_for(cases)["decisions"]
    patch, spacing = _check_patch(d)
    assert spacing == [0.7, 0.7]
    assert d["patch_size"]["inputs"]["la_extent_in_plane_percentile_mm"] == pytest.approx(100.0)
    assert d["resampling"]["inputs"]["n_scans_at_target"] == 3
    assert patch == [240, 240]
    assert d["batch_size"]["value"] == 9


def test_decisions_cpu_profile_coarsens_spacing_to_fit_the_la_in_its_patch():
    """``cpu``: the p95 LA (100 mm) plus 30 mm a side needs 158 mm, so the 128 px patch sits on a 1.234 mm grid."""
    cases = [square_la_case(f"s{i}", e, 0.625, 576) for i, e in enumerate((60, 80, 100))]
    d = plan_for(cases, profile="cpu")["decisions"]
    patch, spacing = _check_patch(d)
    assert patch == [128, 128]
    assert spacing[0] == pytest.approx(158.0 / 128, abs=1e-6) and spacing[0] > 0.625
    assert d["target_spacing"]["inputs"]["coarsened"] is True
    assert d["batch_size"]["value"] == 4
    assert d["network"]["value"] == {
        "gl_widths": [16, 32, 64, 128, 128], "gl_poolings": 4, "gs_width": 16, "lstm_channels": 16,
    }


def test_decisions_profile_that_keeps_spacing_caps_the_patch(monkeypatch):
    monkeypatch.setitem(R.PROFILES, "native", {**R.PROFILES["cpu"], "coarsen_spacing": False})
    cases = [square_la_case(f"s{i}", e, 0.625, 576) for i, e in enumerate((60, 80, 100))]
    d = plan_for(cases, profile="native")["decisions"]
    assert d["target_spacing"]["value"] == [0.625, 0.625]
    assert d["target_spacing"]["inputs"]["coarsened"] is False
    assert d["patch_size"]["value"] == [128, 128]
    assert "caps the patch at 128 px" in d["patch_size"]["reason"]


def test_decisions_small_images_min_patch_and_fov_cap():
    # tiny 64 x 64 images at 2 mm (FOV 128 mm): a 40 mm LA needs 100 mm = 50 px -> MIN_PATCH 64, 3 poolings
    d = plan_for([box_case("a"), box_case("b", "q")])["decisions"]
    assert d["patch_size"]["value"] == [R.MIN_PATCH, R.MIN_PATCH]
    assert d["network"]["value"]["gl_poolings"] == 3  # 64 -> 32 -> 16 -> 8
    assert d["network"]["value"]["gl_widths"] == [32, 64, 128, 256]
    assert d["batch_size"]["value"] == R.MAX_BATCH  # 8 * 16 = 128 clamped
    # an 80 mm LA needs 140 mm > the 128 mm field of view: the patch is the whole image
    d = plan_for([box_case("a", box=((0, 4), (10, 50), (10, 50)))])["decisions"]
    assert d["patch_size"]["value"] == [64, 64]
    assert d["patch_size"]["inputs"]["capped_to_image"] is True


def whole_scan_case(scan, la_mm=(80.0, 65.0, 55.0), size_px=576, slices=44) -> Case:
    """A whole MICCAI 2018-size scan (0.625 x 0.625 x 2.5 mm) with a box LA of ``la_mm`` (x, y, z) off-centre."""
    n = [int(round(e / s)) for e, s in zip(la_mm, (0.625, 0.625, 2.5))]
    return box_case(scan=scan, patient=scan, shape=(slices, size_px, size_px), spacing=(0.625, 0.625, 2.5),
                    box=((10, 10 + n[2]), (300, 300 + n[1]), (250, 250 + n[0])))


@pytest.mark.parametrize("profile, widths", [("cpu", [8, 16, 32, 64]), ("paper", [16, 32, 64, 128])])
def test_decisions_localizer_grid_patch_and_network(profile, widths):
    cases = [whole_scan_case("a", (80, 65, 55)), whole_scan_case("b", (90, 70, 50)), whole_scan_case("c", (70, 60, 60))]
    d = plan_for(cases, profile=profile)["decisions"]
    loc = d["localizer"]["value"]
    # median of the smallest LA extents (55, 50, 60 -> 55) / 12 voxels = 4.583 -> 4.59 mm, coarser than every axis
    assert loc["spacing"] == [4.59, 4.59, 4.59]
    # 360 mm / 4.59 = 78 voxels in-plane, 110 mm / 4.59 = 24 slices: 3 poolings keep >= 3 voxels, multiples of 8
    assert loc["patch_size"] == [24, 80, 80] and loc["strides"] == [2, 2, 2] and loc["downsampling"] == 8
    assert loc["widths"] == widths
    assert "LOCALIZER_LA_VOXELS=12" in d["localizer"]["rule"] and "55.0 mm" in d["localizer"]["reason"]


def test_the_localiser_patch_is_sized_on_the_whole_scans_stage_1_runs_on():
    """Crops skip stage 1: in a dataset of mostly crops its patch still holds a whole field of view (with the median
    of all scans it would be a crop's, and stage 1 of a whole scan would see a fraction of the chest)."""
    whole = [whole_scan_case(s, (80, 65, 55)) for s in "ab"]
    crops = [box_case(scan=s, patient=s, shape=(44, 220, 220), spacing=(0.625, 0.625, 2.5),
                      box=((10, 32), (58, 162), (46, 174))) for s in "cdef"]  # 137.5 mm around an 80 x 65 mm LA
    d = plan_for(whole + crops, profile="cpu")["decisions"]
    loc, crop_fov = d["localizer"]["value"], d["roi"]["value"]["crop_fov_mm"]
    assert all(is_crop(c.image.shape, c.spacing, crop_fov) for c in crops)
    assert not any(is_crop(c.image.shape, c.spacing, crop_fov) for c in whole)
    assert loc["patch_size"] == plan_for(whole, profile="cpu")["decisions"]["localizer"]["value"]["patch_size"]
    assert loc["patch_size"][1] * loc["spacing"][1] >= 360.0  # the whole 360 mm field of view
    assert d["localizer"]["inputs"]["whole_scans"] == 2 and "2 of 6 scans are not crops" in d["localizer"]["reason"]
    only_crops = plan_for(crops, profile="cpu")["decisions"]["localizer"]
    assert only_crops["inputs"]["whole_scans"] == 0 and "all are crops" in only_crops["reason"]
    assert only_crops["value"]["patch_size"][1] * only_crops["value"]["spacing"][1] < 200.0


def test_decisions_roi_margin_snapping_and_crop_size():
    cases = [whole_scan_case("a", (80, 65, 55)), whole_scan_case("b", (90, 70, 50)), whole_scan_case("c", (70, 60, 60))]
    d = plan_for(cases, profile="cpu")["decisions"]
    roi = d["roi"]["value"]
    assert roi["margin_mm"] == pytest.approx(max(R.ROI_MIN_MARGIN_MM, R.ROI_MARGIN_VOXELS * 4.59), abs=0.01)
    assert roi["multiple"] == 16  # Gl pools 4 times
    p95 = float(np.percentile([80.0, 90.0, 70.0], 95))  # in-plane LA extents (x is the larger side)
    assert roi["crop_fov_mm"] == pytest.approx(R.CROP_FOV_FACTOR * (p95 + 2 * roi["margin_mm"]), abs=0.01)
    assert "ROI_MIN_MARGIN_MM" in d["roi"]["rule"] and "crop" in d["roi"]["reason"]


def _deg(radians: float) -> float:
    return round(math.degrees(radians), 3)


def test_decide_augmentation_is_nnunets_default_with_the_oriented_deviations():
    from bundle.planning.planner import decide_augmentation

    d = decide_augmentation([128, 128], [32, 96, 96])
    s2, s1 = d["value"]["stage2"], d["value"]["stage1"]
    # nnU-Net rotates a square 2D patch by +-180 degrees and a 3D patch of max / first side 3 (not > 3) by +-30 about
    # every axis; the plan's fixed orientation caps both at 30 degrees and turns mirroring off
    assert d["inputs"]["nnunet_rotation_deg"] == {"stage2": 180.0, "stage1": 30.0}
    assert s2["rotation"]["prob"] == 0.2 and _deg(s2["rotation"]["in_plane_rad"]) == 30.0
    assert s1["dummy_2d"] is False
    assert _deg(s1["rotation"]["in_plane_rad"]) == 30.0 and _deg(s1["rotation"]["out_of_plane_rad"]) == 30.0
    for block in (s2, s1):
        # nnU-Net's grid scale (0.7, 1.4) is a zoom of (1 / 1.4, 1 / 0.7) for MONAI
        assert block["scaling"] == {"prob": 0.2, "zoom_range": [pytest.approx(0.714286), pytest.approx(1.428571)]}
        assert block["elastic"]["prob"] == 0.0
        assert block["noise"] == {"prob": 0.1, "std": 0.1}
        assert block["blur"] == {"prob": 0.1, "sigma_range": [0.5, 1.0]}  # 0.2 x 0.5 per channel
        assert block["brightness"] == {"prob": 0.15, "factors": [-0.25, 0.25]}
        assert block["contrast"] == {"prob": 0.15, "factors": [-0.25, 0.25]}
        assert block["low_resolution"] == {"prob": 0.125, "zoom_range": [0.5, 1.0]}  # 0.25 x 0.5 per channel
        assert block["inverted_gamma"] == {"prob": 0.1, "gamma": [0.7, 1.5]}
        assert block["gamma"] == {"prob": 0.3, "gamma": [0.7, 1.5]}
        assert block["mirror"] == {"prob": 0.5, "axes": []}
    # nnU-Net v1's elastic parameters for a plan that turns it on: 3D as Rand3DElasticd takes them, 2D as control
    # points 2 * 11 px apart moved by up to the std of v1's field, 200 / (sqrt(3) * 2 sqrt(pi) * 11) = 2.96 px
    assert s1["elastic"]["sigma_range"] == [9.0, 13.0] and s1["elastic"]["magnitude_range"] == [0.0, 900.0]
    assert s2["elastic"]["spacing_px"] == 22.0
    assert s2["elastic"]["magnitude_range_px"] == [0.0, pytest.approx(2.96, abs=0.01)]
    assert all(name in d["rule"] for name in ("AUG_ROTATION_PROB", "AUG_ORIENTED_MAX_ROTATION_DEG", "AUG_MIRROR"))
    json.dumps(d, allow_nan=False)


def test_decide_augmentation_for_an_elongated_2d_and_an_anisotropic_3d_patch():
    from bundle.planning.planner import decide_augmentation

    d = decide_augmentation([64, 128], [8, 96, 96])
    s2, s1 = d["value"]["stage2"], d["value"]["stage1"]
    assert _deg(s2["rotation"]["in_plane_rad"]) == 15.0  # nnU-Net: +-15 degrees for sides 1 : 2 > 1.5
    # 96 / 8 > 3: nnU-Net's dummy 2D: +-180 degrees in-plane only (capped at 30), no low resolution through z
    assert s1["dummy_2d"] is True and d["inputs"]["nnunet_rotation_deg"]["stage1"] == 180.0
    assert _deg(s1["rotation"]["in_plane_rad"]) == 30.0 and s1["rotation"]["out_of_plane_rad"] == 0.0
    assert s1["low_resolution"]["prob"] == 0.0 and s2["low_resolution"]["prob"] == 0.125
    assert "dummy 2D" in d["reason"] and "no low resolution" in d["reason"]


def test_the_committed_plan_holds_the_augmentation_of_its_own_patches_and_old_plans_get_it(tmp_path):
    from pathlib import Path

    from bundle.planning.planner import decide_augmentation

    plan = load_plan(Path(__file__).resolve().parents[2] / "plans" / "phantom.json")
    values = decision_values(plan)
    assert plan["decisions"]["augmentation"] == decide_augmentation(values["patch_size"],
                                                                    values["localizer"]["patch_size"])
    old = json.loads(json.dumps(plan))
    del old["decisions"]["augmentation"]  # a plan written before the decision existed
    save_plan(old, tmp_path / "old.json")
    assert decision_values(load_plan(tmp_path / "old.json"))["augmentation"] == values["augmentation"]
    other = json.loads(json.dumps(old))
    other["decisions"]["localizer"]["value"]["patch_size"] = [8, 96, 96]  # the default follows the plan's patches
    assert decision_values(other)["augmentation"]["stage1"]["dummy_2d"] is True


def test_make_plan_errors_and_single_pass():
    def never():
        raise AssertionError("cases were loaded before the profile was checked")
        yield

    with pytest.raises(ValueError, match="unknown profile"):
        make_plan(never(), "t", {}, {}, profile="gpu9000")
    with pytest.raises(ValueError, match="no scan has LA"):
        make_plan(iter([box_case(box=((0, 0), (0, 0), (0, 0)))]), "t", {}, {})
    loaded = []

    def gen():
        for i in range(4):
            loaded.append(i)
            yield box_case(f"s{i}", f"p{i}")

    plan = make_plan(gen(), "t", {}, {})
    assert loaded == [0, 1, 2, 3]
    assert plan["fingerprint"]["summary"]["n_scans"] == 4
    assert sorted(plan["split"]["groups"]) == ["s0", "s1", "s2", "s3"]


# ---------------------------------------------------------------------------------------------
# split
# ---------------------------------------------------------------------------------------------


def cohort():
    """20 patients: 10 pre+post, 6 post only, 4 pre only; P16 and P17 share a byte-identical label."""
    recs = []
    for i in range(20):
        states = ["pre", "post"] if i < 10 else (["post"] if i < 16 else ["pre"])
        for st in states:
            recs.append({"scan": f"P{i:02d}_{st}", "patient": f"P{i:02d}", "ablation": st, "label_sha1": f"h{i}{st}"})
    by = {r["scan"]: r for r in recs}
    by["P17_pre"]["label_sha1"] = by["P16_pre"]["label_sha1"]
    return recs


def _assignment(split):
    where = {}
    for name in ("train", "validation", "test"):
        for s in split[name]:
            assert s not in where, f"{s} in two splits"
            where[s] = name
    return where


def test_split_groups_patients_and_identical_labels():
    recs = cohort()
    sp = split_patients(recs, seed=0)
    where = _assignment(sp)
    assert sorted(where) == sorted(r["scan"] for r in recs)
    for r in recs:  # one split per patient: pre and post together
        assert where[r["scan"]] == where[f"{r['patient']}_{r['ablation']}"]
        mates = [q["scan"] for q in recs if q["patient"] == r["patient"]]
        assert len({where[m] for m in mates}) == 1
    assert sp["identical_label_groups"] == [["P16_pre", "P17_pre"]]
    assert where["P16_pre"] == where["P17_pre"]
    assert sp["groups"]["P16_pre"] == sp["groups"]["P17_pre"]
    assert sp["groups"]["P00_pre"] == sp["groups"]["P00_post"] != sp["groups"]["P01_pre"]
    # 19 groups: round(0.2 * 19) = 4 test and 4 validation groups
    assert sp["n_groups"] == 19
    groups_in = {k: {sp["groups"][s] for s in sp[k]} for k in ("train", "validation", "test")}
    assert (len(groups_in["test"]), len(groups_in["validation"]), len(groups_in["train"])) == (4, 4, 11)
    # stratified: groups pre+post (10), post (6), pre (3 after the merge) each get test and validation
    # groups in proportion (4 * 10/19 = 2.1, 4 * 6/19 = 1.3, 4 * 3/19 = 0.6)
    kind = {}
    for r in recs:
        kind.setdefault(sp["groups"][r["scan"]], set()).add(r["ablation"])
    kind = {g: "+".join(a for a in ("pre", "post") if a in k) for g, k in kind.items()}
    for split_name in ("test", "validation"):
        counts = {k: sum(1 for g in groups_in[split_name] if kind[g] == k) for k in ("pre+post", "post", "pre")}
        assert counts == {"pre+post": 2, "post": 1, "pre": 1}, split_name
        assert {k: sp["strata"][k][split_name] for k in counts} == counts


def test_split_folds_partition_train_and_validation():
    sp = split_patients(cohort(), seed=3, n_folds=5)
    trainval = set(sp["train"]) | set(sp["validation"])
    assert len(sp["folds"]) == 5
    seen = []
    for f in sp["folds"]:
        assert set(f["train"]) | set(f["validation"]) == trainval
        assert not set(f["train"]) & set(f["validation"])
        train_groups = {sp["groups"][s] for s in f["train"]}
        assert not train_groups & {sp["groups"][s] for s in f["validation"]}
        seen += f["validation"]
    assert sorted(seen) == sorted(trainval)  # each scan in exactly one fold's validation
    sizes = [len({sp["groups"][s] for s in f["validation"]}) for f in sp["folds"]]
    assert max(sizes) - min(sizes) <= 1
    assert not set(sp["test"]) & trainval


def test_a_fold_gives_training_and_validation_of_that_fold_and_the_plans_test_split():
    from bundle.planning.split import split_scans

    sp = split_patients(cohort(), seed=3, n_folds=5)
    plan = {"split": sp}
    for k, fold in enumerate(sp["folds"]):
        assert split_scans(plan, "train", k) == fold["train"] and split_scans(plan, "validation", k) == fold["validation"]
        assert split_scans(plan, "test", k) == sp["test"]
    assert split_scans(plan, "train") == sp["train"]
    for bad in (5, -1, "0", True):
        with pytest.raises(ValueError, match="is not one of the plan's 5 folds"):
            split_scans(plan, "train", bad)
    with pytest.raises(ValueError, match="no cross-validation folds"):
        split_scans({"split": {**sp, "folds": []}}, "validation", 0)


def test_split_is_seeded():
    a, b = split_patients(cohort(), seed=0), split_patients(cohort(), seed=0)
    assert a == b
    assert split_patients(list(reversed(cohort())), seed=0) == a  # record order does not matter
    c = split_patients(cohort(), seed=1)
    assert (c["test"], c["validation"]) != (a["test"], a["validation"])


def test_split_small_and_invalid_inputs():
    one = split_patients([{"scan": "a", "patient": "p", "ablation": "pre", "label_sha1": "x"}])
    assert one["train"] == ["a"] and one["validation"] == one["test"] == [] and one["folds"] == []
    assert one["notes"]
    two = split_patients(
        [{"scan": s, "patient": s, "ablation": "post", "label_sha1": s} for s in ("a", "b")], seed=0
    )
    assert len(two["train"]) == 1 and len(two["validation"]) == 1 and two["test"] == []
    three = split_patients([{"scan": s, "patient": s, "ablation": "post", "label_sha1": s} for s in "abc"])
    assert (len(three["train"]), len(three["validation"]), len(three["test"])) == (1, 1, 1)
    # empty labels (la_voxels 0) are byte-identical but do not merge patients
    empties = [{"scan": s, "patient": s, "ablation": "unknown", "label_sha1": "e", "la_voxels": 0} for s in "abcde"]
    sp = split_patients(empties)
    assert sp["n_groups"] == 5 and sp["identical_label_groups"] == []
    # a missing patient id: the scan is its own patient
    sp = split_patients([{"scan": s, "patient": "", "ablation": "pre", "label_sha1": s} for s in "abcd"])
    assert sp["n_groups"] == 4
    with pytest.raises(ValueError, match="no records"):
        split_patients([])
    with pytest.raises(ValueError, match="unique"):
        split_patients([{"scan": "a", "patient": "p"}, {"scan": "a", "patient": "q"}])
    with pytest.raises(ValueError, match="fraction"):
        split_patients(cohort(), test_fraction=0.6, val_fraction=0.5)


# ---------------------------------------------------------------------------------------------
# plan files
# ---------------------------------------------------------------------------------------------


def test_plan_save_load_round_trip(tmp_path):
    plan = plan_for([box_case("a", "p"), box_case("b", "p", "post", scar_face=True), box_case("c", "q")])
    path = save_plan(plan, tmp_path / "plans" / "t.json")
    text = path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "name": "t",')
    loaded = load_plan(path)
    assert loaded == json.loads(json.dumps(plan))
    assert list(loaded) == list(PLAN_KEYS)
    assert decision_values(loaded)["patch_size"] == plan["decisions"]["patch_size"]["value"]
    save_plan(plan, path)  # overwrite leaves no temporary file behind
    assert [p.name for p in path.parent.iterdir()] == ["t.json"]


def test_load_plan_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found") as e:
        load_plan(tmp_path / "missing.json")
    assert "missing.json" in str(e.value)
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": ')
    with pytest.raises(DatasetError, match="not valid JSON") as e:
        load_plan(bad)
    assert str(bad) in str(e.value)
    bad.write_text("[1, 2]")
    with pytest.raises(DatasetError, match="JSON object"):
        load_plan(bad)
    plan = plan_for([box_case("a")])
    partial = {k: v for k, v in plan.items() if k != "split"}
    bad.write_text(json.dumps(partial))
    with pytest.raises(DatasetError, match="split"):
        load_plan(bad)
    bad.write_text(json.dumps({**plan, "version": 1}))  # a crop-only plan of an older bundle
    with pytest.raises(DatasetError, match="version 1 .*re-run jasgan-plan"):
        load_plan(bad)
    broken = json.loads(json.dumps(plan))
    del broken["decisions"]["patch_size"]["value"]
    bad.write_text(json.dumps(broken))
    with pytest.raises(DatasetError, match="patch_size"):
        load_plan(bad)
    assert math.isfinite(plan["decisions"]["batch_size"]["value"])


def test_the_plan_fixes_the_label_set_and_its_records_carry_it(tmp_path):
    """The 2018 challenge is planned without scar (its default label set, none) unless told otherwise; the plan's
    records carry the label set to every reader of its scans."""
    from conftest import real_looking_dataset

    from bundle.data.layouts import load_case, plan_scar_labels
    from bundle.planning.run import plan_dataset
    from bundle.planning.split import split_records

    root = real_looking_dataset(tmp_path / "atria", "miccai2018", n_patients=3, profile="tiny")
    plan = plan_dataset(root, "miccai2018", name="atria", out=tmp_path / "atria.json", profile="cpu")
    assert plan["label_protocol"]["scar_labels"] == "none" == plan_scar_labels(plan)
    records = split_records(plan, "train", root, "miccai2018")
    assert {r["scar_labels"] for r in records} == {"none"}
    assert not (load_case(records[0]).label == SCAR).any()
    toolkit = plan_dataset(root, "miccai2018", name="t", out=tmp_path / "t.json", profile="cpu", scar_labels="toolkit")
    assert plan_scar_labels(toolkit) == "toolkit"
    assert plan_scar_labels({"label_protocol": {"layout": "miccai2018"}}) == "toolkit"  # a plan older than label sets
    with pytest.raises(ValueError, match="unknown scar_labels"):
        plan_dataset(root, "miccai2018", out=tmp_path / "x.json", scar_labels="all")
