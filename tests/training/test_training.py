"""Losses, the JAS-GAN trainer, preprocessing cache, training items, post-processing and export."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from bundle.inference.postprocess import postprocess
from bundle.networks import CascadeNet, JointDiscriminator
from bundle.networks.weights import load_weights
from bundle.preprocessing.cache import cache_key, load_split, preprocess_case, preprocessed
from bundle.preprocessing.image import normalize
from bundle.training.datasets import (
    LabelToTargetsd,
    label_to_targets,
    slice_step,
    training_slices,
    validation_volumes,
)
from bundle.training.export import export_torchscript
from bundle.training.losses import UncertaintyWeightedLoss, discriminator_loss, feature_matching_loss
from bundle.training.trainer import JasGanTrainer, logged_values

WIDTHS = (4, 8, 16)


def _net(cascade: str = "adaptive") -> CascadeNet:
    return CascadeNet(1, WIDTHS, gs_width=4, cascade=cascade, lstm_channels=4)


def _batch(n: int = 4, size: int = 32) -> dict:
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(n, 1, size, size, generator=gen)
    label = torch.zeros(n, 2, size, size)
    label[:, 0, 8:24, 8:24] = 1
    label[:, 1, 8:10, 8:24] = 1
    image = image + 2 * label[:, :1] + 2 * label[:, 1:]
    return {"image": image, "label": label}


# ------------------------------------------------------------------------------------ losses


def test_uncertainty_loss_is_kendall_weighting():
    loss = UncertaintyWeightedLoss(init_log_vars=(0.5, -0.25))
    batch = _batch()
    pred = torch.randn(4, 2, 32, 32)
    ce, dice = loss.parts(pred, batch["label"])
    expected = math.exp(-0.5) * ce + 0.25 + math.exp(0.25) * dice - 0.125
    assert torch.allclose(loss(pred, batch["label"]), expected, atol=1e-6)
    assert torch.allclose(loss.weights, torch.tensor([math.exp(-0.5), math.exp(0.25)]))
    assert "log_vars" in loss.state_dict()


def test_uncertainty_loss_frozen_weights_is_plain_sum():
    loss = UncertaintyWeightedLoss(learn_weights=False)
    assert not loss.log_vars.requires_grad
    pred, target = torch.randn(2, 2, 16, 16), _batch(2, 16)["label"]
    ce, dice = loss.parts(pred, target)
    assert torch.allclose(loss(pred, target), ce + dice)


def test_la_dice_adds_the_las_dice_loss_to_its_cross_entropy():
    from monai.losses import DiceLoss

    pred, target = torch.randn(2, 2, 16, 16), _batch(2, 16)["label"]
    plain, with_dice = UncertaintyWeightedLoss(), UncertaintyWeightedLoss(la_dice=True)
    la_dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)(pred[:, :1], target[:, :1])
    (ce, scar), (ce_dice, scar_again) = plain.parts(pred, target), with_dice.parts(pred, target)
    assert torch.allclose(ce_dice, ce + la_dice) and torch.allclose(scar, scar_again) and la_dice > 0


def test_scar_ce_adds_the_scars_cross_entropy_to_its_dice_loss():
    import torch.nn.functional as F

    pred, target = torch.randn(2, 2, 16, 16), _batch(2, 16)["label"]
    (la, scar), (la_again, scar_ce) = UncertaintyWeightedLoss().parts(pred, target), \
        UncertaintyWeightedLoss(scar_ce=True).parts(pred, target)
    ce = F.binary_cross_entropy_with_logits(pred[:, 1:2], target[:, 1:2])
    assert torch.allclose(scar_ce, scar + ce) and torch.allclose(la, la_again) and ce > 0


def test_without_scar_labels_the_loss_is_the_las_term_alone():
    loss = UncertaintyWeightedLoss(init_log_vars=(0.5, -0.25), train_scar=False)
    pred, target = torch.randn(2, 2, 16, 16), _batch(2, 16)["label"]
    ce, _ = loss.parts(pred, target)
    assert torch.allclose(loss(pred, target), math.exp(-0.5) * ce + 0.25)


def test_discriminator_loss_rewards_separation():
    good = discriminator_loss(torch.full((2, 1, 8, 8), 5.0), torch.full((2, 1, 8, 8), -5.0))
    bad = discriminator_loss(torch.full((2, 1, 8, 8), -5.0), torch.full((2, 1, 8, 8), 5.0))
    assert good < 0.02
    assert bad > 10


def test_feature_matching_zero_only_for_equal_batch_means():
    feats = [torch.randn(4, 3, 8, 8), torch.randn(4, 5, 4, 4)]
    assert feature_matching_loss(feats, [f.flip(0) for f in feats]).item() == pytest.approx(0.0, abs=1e-6)
    assert feature_matching_loss(feats, [f + 1 for f in feats]).item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        feature_matching_loss(feats, feats[:1])


# ------------------------------------------------------------------------------------ trainer


def _trainer(with_discriminator: bool = True, batch: dict | None = None):
    torch.manual_seed(0)
    net, loss = _net(), UncertaintyWeightedLoss()
    disc = JointDiscriminator(3, channels=(4, 8, 8, 16)) if with_discriminator else None
    opt = torch.optim.Adam(list(net.parameters()) + list(loss.parameters()), lr=1e-2)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3) if disc is not None else None
    trainer = JasGanTrainer("cpu", 1, [batch or _batch()], net, opt, loss, disc, d_opt)
    trainer.state.device = torch.device("cpu")
    return trainer, net, disc, loss


def test_one_iteration_updates_generator_discriminator_and_loss_weights():
    trainer, net, disc, loss = _trainer()
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (net, disc, loss)]
    out = trainer._iteration(trainer, _batch())
    for module, old in zip((net, disc, loss), before):
        changed = [k for k, v in module.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, old[k])]
        assert changed, f"{type(module).__name__} did not change"
    values = logged_values(out)
    assert list(values) == ["loss", "seg_loss", "ce_la", "dice_scar", "adv_loss", "d_loss", "lambda1", "lambda2"]
    assert values["adv_loss"] > 0 and values["d_loss"] > 0
    assert out["pred"].shape == (4, 2, 32, 32)


def test_iterations_lower_the_loss_on_a_fixed_batch():
    batch = _batch()
    trainer, *_ = _trainer(batch=batch)
    losses = [trainer._iteration(trainer, batch)["seg_loss"] for _ in range(12)]
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3])


def test_trainer_without_discriminator_has_no_adversarial_term():
    trainer, net, disc, _ = _trainer(with_discriminator=False)
    out = trainer._iteration(trainer, _batch())
    assert disc is None and out["adv_loss"] == 0.0 and out["d_loss"] == 0.0
    with pytest.raises(ValueError, match="both discriminator and d_optimizer"):
        JasGanTrainer("cpu", 1, [_batch()], net, torch.optim.Adam(net.parameters()), UncertaintyWeightedLoss(),
                      JointDiscriminator(3), None)


# ------------------------------------------------------------------------------------ data


def _case(scan: str = "A", shape=(6, 40, 48), spacing=(1.0, 1.0, 2.0)) -> dict:
    rng = np.random.default_rng(0)
    label = np.zeros(shape, np.uint8)
    label[1:4, 10:30, 12:36] = 1
    label[2, 10:12, 12:36] = 2
    image = rng.normal(100, 10, shape).astype(np.float32) + 50 * (label > 0)
    return {"image": image, "label": label, "spacing": np.asarray(spacing), "scan": scan, "patient": scan,
            "ablation": "post"}


def test_training_slices_are_whole_slices_with_the_near_box():
    case = _case()
    items = training_slices([case], patch_size=(16, 16))
    assert [i["slice"] for i in items] == list(range(6))
    assert [i["slice"] for i in training_slices([case], (16, 16), slice_margin=0)] == [1, 2, 3]
    assert [i["slice"] for i in training_slices([case], (16, 16), slice_margin=1)] == [0, 1, 2, 3, 4]
    # a thin-slice scan is sampled every slice_step_mm: the LA's first slice, then every 3rd at 0.7 mm
    thin = _case(shape=(24, 40, 48), spacing=(0.7, 0.7, 0.7))
    thin["label"][:] = 0
    thin["label"][8:17, 10:30, 12:36] = 1
    assert slice_step(0.7, 2.0) == 3 and slice_step(2.5, 2.0) == 1 and slice_step(0.7, None) == 1
    assert [i["slice"] for i in training_slices([thin], (16, 16), slice_margin=1, slice_step_mm=2.0)] == [5, 8, 11, 14,
                                                                                                       17]
    item = items[2]
    assert item["image"].shape == (1, 40, 48) and item["label"].max() == 2  # the whole field of view ...
    assert np.shares_memory(item["image"], case["image"])  # ... as a view of the cached volume
    # LA rows 10..29 widened by 8 each side -> 2..37, columns 12..35 -> 4..43 (clipped to the image)
    assert item["near"] == [2, 38, 4, 44]


def test_sampling_map_classes_and_patch_centres():
    from monai.transforms import RandCropByLabelClassesd

    from bundle.training.datasets import SamplingMapd

    item = training_slices([_case()], patch_size=(16, 16))[2]
    sampled = SamplingMapd("label")(item)["sampling"]
    assert sampled.shape == (1, 40, 48) and set(np.unique(sampled)) == {0, 1, 2, 3}
    assert (sampled[0, 0, :] == 0).all() and sampled[0, 5, 6] == 1  # far (row 0) and near (inside 2..38 x 4..44)
    assert (sampled[0, 10, 12:36] == 3).all() and (sampled[0, 12:30, 12:36] == 2).all()
    crop = RandCropByLabelClassesd(["image", "label"], "sampling", (8, 8), ratios=[0, 0, 0, 1], num_classes=4,
                                   num_samples=20, warn=False)
    crop.set_random_state(0)
    for patch in crop(SamplingMapd("label")(item)):  # scar-centred patches all hold scar
        assert (np.asarray(patch["label"]) == 2).any()


def test_training_slices_without_any_la_is_an_error():
    case = _case()
    case["label"][:] = 0
    with pytest.raises(ValueError, match="no training slice holds LA"):
        training_slices([case], (16, 16))


def test_validation_volumes_are_channel_first():
    (item,) = validation_volumes([_case()])
    assert item["image"].shape == (1, 6, 40, 48) and item["label"].shape == (1, 6, 40, 48)


def test_label_to_targets_channels():
    label = np.array([[[0, 1, 2]]], np.uint8)
    out = label_to_targets(label)
    assert out.shape == (2, 1, 3) and out[0].tolist() == [[0, 1, 1]] and out[1].tolist() == [[0, 0, 1]]
    assert torch.equal(LabelToTargetsd("label")({"label": torch.as_tensor(label)})["label"], torch.as_tensor(out))
    with pytest.raises(ValueError):
        label_to_targets(np.zeros((2, 3, 3)))


def test_normalize_zscore_and_unknown_scheme():
    image = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    out = normalize(image, {"scheme": "zscore_per_volume", "epsilon": 1e-8})
    assert abs(out.mean()) < 1e-6 and abs(out.std() - 1) < 1e-5
    clipped = normalize(image, {"scheme": "zscore_per_volume", "clip": True, "clip_bounds_zscore": [-1, 1]})
    assert clipped.min() == -1 and clipped.max() == 1
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize(image, {"scheme": "minmax"})


def _plan(spacing=(2.0, 2.0)) -> dict:
    return {
        "name": "t",
        "decisions": {
            "target_spacing": {"value": list(spacing)},
            "normalization": {"value": {"scheme": "zscore_per_volume", "epsilon": 1e-8, "clip": False}},
            "resampling": {"value": {"image": "linear", "label": "nearest", "z": "none"}},
        },
        "split": {"train": [], "validation": [], "test": []},
    }


def test_preprocess_resamples_in_plane_only():
    from bundle.data.case import Case

    c = _case()
    case = Case(image=c["image"], label=c["label"], spacing=(1.0, 1.0, 2.0))
    out = preprocess_case(case, _plan((2.0, 2.0)))
    assert out["image"].shape == (6, 20, 24) and out["label"].shape == (6, 20, 24)
    assert out["spacing"].tolist() == [2.0, 2.0, 2.0]
    assert set(np.unique(out["label"])) == {0, 1, 2}
    same = preprocess_case(case, _plan((1.0, 1.0)))
    assert same["image"].shape == (6, 40, 48) and np.array_equal(same["label"], c["label"])


def test_cache_is_reused_and_keyed_by_plan(tiny_dataset, tmp_path):
    root, plan = tiny_dataset
    cache = tmp_path / "cache"
    first = load_split(plan, "train", root, "datalist", cache)
    files = sorted((cache / plan["name"]).glob("*.npz"))
    assert len(files) == len(plan["split"]["train"]) == len(first)
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = load_split(plan, "train", root, "datalist", cache)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert all(np.array_equal(a["image"], b["image"]) for a, b in zip(first, again))
    edited = json.loads(json.dumps(plan))
    edited["decisions"]["normalization"]["value"]["clip"] = True
    from bundle.data.layouts import read_dataset

    record = read_dataset(root, "datalist")[0]
    assert cache_key(plan, record) != cache_key(edited, record)
    preprocessed(record, edited, cache)
    assert len(list((cache / plan["name"]).glob("*.npz"))) == len(files) + 1


def test_damaged_cache_entry_is_rebuilt(tiny_dataset, tmp_path):
    from bundle.data.layouts import read_dataset

    root, plan = tiny_dataset
    record = read_dataset(root, "datalist")[0]
    good = preprocessed(record, plan, tmp_path)
    (path,) = (tmp_path / plan["name"]).glob("*.npz")
    path.write_bytes(b"not an npz")
    again = preprocessed(record, plan, tmp_path)
    assert np.array_equal(again["image"], good["image"]) and path.stat().st_size > 100


def test_missing_split_scan_is_a_clear_error(tiny_dataset):
    from bundle.errors import DatasetError

    root, plan = tiny_dataset
    broken = {**plan, "split": {**plan["split"], "validation": ["nope"]}}
    with pytest.raises(DatasetError, match="missing"):
        load_split(broken, "validation", root, "datalist")


# ------------------------------------------------------------------------------------ post-processing


def test_postprocess_keeps_largest_la_and_scar_inside():
    pred = torch.zeros(2, 4, 20, 20)
    pred[0, :, 2:10, 2:10] = 1  # LA
    pred[0, 1, 15:17, 15:17] = 1  # a stray blob
    pred[1, 1, 2:4, 2:10] = 1  # scar on the LA
    pred[1, 1, 15:17, 15:17] = 1  # scar on the blob
    out = postprocess(pred)
    assert out[0, 1, 15:17, 15:17].sum() == 0 and out[1, 1, 15:17, 15:17].sum() == 0
    assert out[0].sum() == 4 * 64 and out[1].sum() == 16
    with pytest.raises(ValueError):
        postprocess(torch.zeros(3, 4, 4))


def test_postprocess_keeps_scar_on_the_las_edge_as_la():
    """Scar is LA wall: scar the network finds just outside its LA channel joins the LA instead of being cut off;
    scar apart from the LA is dropped with it."""
    pred = torch.zeros(2, 3, 20, 20)
    pred[0, :, 4:12, 4:12] = 1  # LA channel
    pred[1, :, 12:14, 4:12] = 1  # scar on the wall's outer edge, where the LA channel stopped
    pred[1, 1, 17:19, 17:19] = 1  # scar far from the LA
    out = postprocess(pred)
    assert out[0, :, 12:14, 4:12].all() and out[1, :, 12:14, 4:12].all()
    assert out[0].sum() == 3 * (64 + 16) and out[1].sum() == 3 * 16


def test_postprocess_closing_fills_a_hole():
    pred = torch.zeros(2, 1, 20, 20)
    pred[0, 0, 4:16, 4:16] = 1
    pred[0, 0, 9, 9] = 0
    assert postprocess(pred, closing_radius=1)[0, 0, 9, 9] == 1
    assert postprocess(pred)[0, 0, 9, 9] == 0


# ------------------------------------------------------------------------------------ export


def test_torchscript_export_matches_checkpoint(tmp_path):
    net = _net().eval()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    out = export_torchscript(_net(), tmp_path / "model.pt", tmp_path / "model.ts", (32, 40))
    scripted = torch.jit.load(str(out))
    x = torch.randn(3, 1, 37, 44)
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), atol=1e-5)


def test_load_weights_names_the_file_on_mismatch(tmp_path):
    from bundle.errors import DatasetError

    torch.save(_net().state_dict(), tmp_path / "model.pt")
    with pytest.raises(DatasetError, match="model.pt"):
        load_weights(CascadeNet(1, (4, 8), gs_width=4, lstm_channels=4), tmp_path / "model.pt")
    with pytest.raises(DatasetError, match="not found"):
        load_weights(_net(), tmp_path / "absent.pt")


def test_training_patches_are_z_scored_with_the_moments_of_the_las_roi():
    """Stage 2 trains on what it sees at inference: the scan z-scored with the moments of stage 1's ROI."""
    import torch

    from bundle.preprocessing.roi import label_roi, roi_normalized
    from bundle.training.datasets import RoiNormalized

    case = _case()
    case["image"][:, :, 44:] = 1000.0  # something bright far from the LA (outside the ROI) must not matter
    item = training_slices([case], (16, 16), roi_margin_mm=2.0, roi_multiple=8)[2]
    out = RoiNormalized(keys="image")(item)["image"]
    roi = label_roi(case["label"], case["spacing"], 2.0, 8)
    assert roi.stop[2] <= 44  # LA columns 12..35 plus 2 mm, rounded up to 8: 10..42
    expected = roi_normalized(torch.as_tensor(case["image"])[None], roi)[0]  # (z, y, x) of the ROI
    z = item["slice"] - roi.start[0]
    np.testing.assert_allclose(out[0][roi.slices[1:]], expected[z].numpy(), atol=1e-5)
    assert np.shares_memory(item["image"], case["image"])  # the cached volume itself is left as it is


def test_postprocess_on_the_las_box_equals_postprocess_on_the_whole_volume():
    from bundle.inference.postprocess import postprocess_box

    rng = np.random.default_rng(1)
    pred = torch.zeros(2, 8, 40, 40)
    pred[0, 1:6, 2:20, 0:15] = 1  # LA at the image border, with holes the closing fills
    pred[0, 2:4, 30:34, 30:34] = 1  # a smaller second component, dropped
    pred[0][torch.as_tensor(rng.random((8, 40, 40)) < 0.05)] = 0
    pred[1, 2:4, 2:6, 0:15] = 1
    pred[1, 2, 31, 31] = 1  # scar outside the largest LA component, dropped
    for radius in (0, 2):
        assert torch.equal(postprocess_box(pred, radius), postprocess(pred, radius))
    assert not postprocess_box(torch.zeros(2, 3, 4, 4)).any()


# ------------------------------------------------------------------------------------ mixed precision


def test_amp_is_ignored_on_a_cpu_with_a_warning(caplog):
    from bundle.training.trainer import mixed_precision

    with caplog.at_level("WARNING"):
        assert mixed_precision(True, "cpu") is False
    assert "amp: true is ignored on cpu" in caplog.text
    assert mixed_precision(False, "cpu") is False and mixed_precision(True, "cuda:0") is True


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_amp_iteration_autocasts_forward_and_steps_every_optimiser(dtype):
    """The trainer's mixed-precision path (run here through CPU autocast; the configs enable it on CUDA only):
    float32 logits and losses, every network and the loss weights updated, a gradient scaler for float16 only."""
    torch.manual_seed(0)
    net, loss = _net(), UncertaintyWeightedLoss()
    disc = JointDiscriminator(3, channels=(4, 8, 8, 16))
    opt = torch.optim.Adam(list(net.parameters()) + list(loss.parameters()), lr=1e-2)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    trainer = JasGanTrainer("cpu", 1, [_batch()], net, opt, loss, disc, d_opt, amp=True, amp_dtype=dtype)
    trainer.state.device = torch.device("cpu")
    assert trainer.g_scaler.is_enabled() == trainer.d_scaler.is_enabled() == (dtype == "float16")
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (net, disc, loss)]
    forward_dtypes = []
    net.register_forward_hook(lambda module, inputs, output: forward_dtypes.append(output.dtype))
    out = trainer._iteration(trainer, _batch())
    assert forward_dtypes == [getattr(torch, dtype)]  # Gls ran in the reduced precision
    assert out["pred"].dtype == torch.float32 and np.isfinite([out["seg_loss"], out["adv_loss"], out["d_loss"]]).all()
    for module, old in zip((net, disc, loss), before):
        assert any(not torch.equal(v, old[k]) for k, v in module.state_dict().items() if v.dtype.is_floating_point)
    assert all(p.dtype == torch.float32 for p in net.parameters())
    with pytest.raises(ValueError, match="amp_dtype"):
        JasGanTrainer("cpu", 1, [_batch()], net, opt, loss, amp=True, amp_dtype="float8")
