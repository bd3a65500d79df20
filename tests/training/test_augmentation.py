"""Training augmentation of configs/train.yaml: nnU-Net's defaults as the plan's ``augmentation`` decision sets them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.transforms import Compose, DeleteItemsd, RandSpatialCropd

from bundle.data.labels import LA, SCAR
from bundle.planning.planner import decide_augmentation, decision_values, load_plan, save_plan

REPO = Path(__file__).resolve().parents[2]
PLAN = REPO / "plans" / "phantom.json"
STAGE2_AUGMENTATION = [
    "RandRotated", "RandZoomd", "RandIntensityCurved", "RandGaussianNoised", "RandGaussianSmoothd",
    "RandScaleIntensityd", "RandScaleIntensityFixedMeand", "RandSimulateLowResolutiond", "RandAdjustContrastd",
    "RandAdjustContrastd", "RandFlipd", "RandFlipd",
]
SPATIAL = {"RandRotated", "RandZoomd", "Rand2DElasticd", "Rand3DElasticd", "RandFlipd"}


def _plan(stage_probs: dict | None = None, localizer_patch: list[int] | None = None) -> dict:
    """The committed phantom plan; ``stage_probs`` {"spatial": p, "intensity": p} forces every probability of both
    augmentation blocks (mirroring along every axis when spatial > 0)."""
    plan = copy.deepcopy(json.loads(PLAN.read_text()))
    if localizer_patch is not None:
        plan["decisions"]["localizer"]["value"]["patch_size"] = localizer_patch
    if stage_probs is not None:
        for block in plan["decisions"]["augmentation"]["value"].values():
            for name, params in block.items():
                if isinstance(params, dict) and "prob" in params:
                    kind = "spatial" if name in ("rotation", "scaling", "elastic", "mirror") else "intensity"
                    params["prob"] = stage_probs[kind]
            block["mirror"]["axes"] = list(range(block["spatial_dims"]))
    return plan


def _chain(plan: dict, key: str, contrast_curve: float | None = None) -> Compose:
    """The parsed chain ``key`` of configs/train.yaml with ``plan``; ``contrast_curve`` overrides the chance of the
    stage's random intensity curve (localizer_contrast_curve or contrast_curve), which is the config's, not the
    plan's."""
    parser = ConfigParser()
    parser.read_config(str(REPO / "configs" / "train.yaml"))
    parser["plan"] = plan
    if contrast_curve is not None:
        parser["localizer_contrast_curve" if key.startswith("localizer") else "contrast_curve"] = contrast_curve
    return parser.get_parsed_content(key)


def _augmentation(chain: Compose) -> list:
    """The transforms after the crop: of stage 2 (after its last DeleteItemsd, the crop's) without its final
    LabelToTargetsd, of stage 1 (after RandSpatialCropd) all."""
    kinds = [type(t) for t in chain.transforms]
    if RandSpatialCropd in kinds:
        return list(chain.transforms[kinds.index(RandSpatialCropd) + 1:])
    return list(chain.transforms[len(kinds) - kinds[::-1].index(DeleteItemsd):-1])


def _blobs(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eight smooth bright blobs (radius 3..7 px) on 0, (1, *shape), and their label: LA where the image > 0.5, scar
    in the first blob."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).astype(np.float32)
    blobs = []
    for _ in range(8):
        centre = [rng.uniform(0.25 * s, 0.75 * s) for s in shape]
        dist = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
        blobs.append(np.clip(1.5 - dist / rng.uniform(3, 7), 0, 1))  # 1 inside r / 2, 0.5 at r, 0 from 1.5 r
    image = np.max(blobs, axis=0).astype(np.float32)
    label = np.where(image > 0.5, LA, 0).astype(np.uint8)
    label[blobs[0] > 0.5] = SCAR
    return image[None], label[None]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


def _slice_item(image: np.ndarray, label: np.ndarray) -> dict:
    h, w = image.shape[1:]
    return {"image": image, "label": label, "near": [0, h, 0, w], "roi_mean": 0.0, "roi_std": 1.0,
            "scan": "s", "patient": "p", "ablation": "pre", "slice": 0}


def test_stage2_chain_is_nnunets_after_the_roi_z_scoring_with_the_plans_parameters():
    chain = _chain(_plan(), "train#preprocessing")
    names = [type(t).__name__ for t in chain.transforms]
    assert names.index("RoiNormalized") < names.index("RandCropByLabelClassesd") < names.index("RandRotated")
    assert [type(t).__name__ for t in _augmentation(chain)] == STAGE2_AUGMENTATION  # no elastic: off in the plan
    aug = json.loads(PLAN.read_text())["decisions"]["augmentation"]["value"]["stage2"]
    by_name = {type(t).__name__: t for t in _augmentation(chain)}
    assert by_name["RandRotated"].prob == aug["rotation"]["prob"] == 0.2
    assert by_name["RandRotated"].rand_rotate.range_x == pytest.approx((-np.pi / 6, np.pi / 6), abs=1e-6)
    assert by_name["RandZoomd"].rand_zoom.min_zoom == pytest.approx((1 / 1.4,), abs=1e-6)
    assert by_name["RandSimulateLowResolutiond"].prob == 0.125
    assert by_name["RandIntensityCurved"].prob == 0.3  # the config's contrast_curve, not the plan's
    off = [type(t).__name__ for t in _augmentation(_chain(_plan(), "train#preprocessing", contrast_curve=0.0))]
    assert off == [n for n in STAGE2_AUGMENTATION if n != "RandIntensityCurved"]  # off: not in the chain
    gammas = [t for t in _augmentation(chain) if type(t).__name__ == "RandAdjustContrastd"]
    assert [(t.prob, t.adjuster.invert_image, t.adjuster.retain_stats) for t in gammas] == [(0.1, True, True),
                                                                                            (0.3, False, True)]
    assert [t.prob for t in _augmentation(chain) if type(t).__name__ == "RandFlipd"] == [0.0, 0.0]  # no mirror axes


def test_elastic_and_mirroring_are_in_the_chains_only_when_the_plan_turns_them_on():
    plan = _plan()
    for stage in ("stage2", "stage1"):
        plan["decisions"]["augmentation"]["value"][stage]["elastic"]["prob"] = 0.3
    plan["decisions"]["augmentation"]["value"]["stage2"]["mirror"]["axes"] = [1]
    stage2 = [type(t).__name__ for t in _chain(plan, "train#preprocessing").transforms]
    stage1 = [type(t).__name__ for t in _chain(plan, "localizer#preprocessing").transforms]
    assert stage2.index("RandZoomd") + 1 == stage2.index("Rand2DElasticd") and "Rand2DElasticd" not in stage1
    assert stage1.index("RandZoomd") + 1 == stage1.index("Rand3DElasticd")
    flips = [t.prob for t in _chain(plan, "train#preprocessing").transforms if type(t).__name__ == "RandFlipd"]
    assert flips == [0.0, 0.5]


def test_a_plan_without_the_augmentation_decision_trains_with_the_default(tmp_path):
    old = json.loads(PLAN.read_text())
    committed = old["decisions"].pop("augmentation")["value"]
    save_plan(old, tmp_path / "old.json")
    values = decision_values(load_plan(tmp_path / "old.json"))
    patches = old["decisions"]["patch_size"]["value"], old["decisions"]["localizer"]["value"]["patch_size"]
    assert values["augmentation"] == committed == decide_augmentation(*patches)["value"]
    chain = _chain(load_plan(tmp_path / "old.json"), "train#preprocessing")
    assert [type(t).__name__ for t in _augmentation(chain)] == STAGE2_AUGMENTATION


@pytest.mark.parametrize("key", ["train#preprocessing", "localizer#preprocessing"])
def test_each_augmentation_applies_when_forced_and_only_spatial_ones_move_the_label(key):
    three_d = key.startswith("localizer")
    plan = _plan({"spatial": 1.0, "intensity": 1.0}, localizer_patch=[16, 32, 32])
    chain = _chain(plan, key, contrast_curve=1.0)
    transforms = _augmentation(chain)
    expected = {"Rand3DElasticd" if three_d else "Rand2DElasticd", "RandIntensityCurved"}
    assert expected <= {type(t).__name__ for t in transforms}
    image, label = _blobs((16, 32, 32) if three_d else (64, 64))
    image = image + np.linspace(0, 0.3, image.size, dtype=np.float32).reshape(image.shape)  # asymmetric everywhere
    data = {"image": torch.as_tensor(image), "label": torch.as_tensor(label, dtype=torch.float32)}
    for t in transforms:
        name = type(t).__name__
        t.set_random_state(seed=1)
        out = t(copy.deepcopy(data))
        assert not torch.allclose(torch.as_tensor(out["image"]), data["image"]), name
        moved = not torch.equal(torch.as_tensor(out["label"]), data["label"])
        assert moved == (name in SPATIAL), name


def _aligned_draws(chain: Compose, item: dict, draws: int, three_d: bool) -> list[float]:
    """Dice of the transformed label with the transformed image thresholded at 0.5, per draw; checks the targets."""
    dice = []
    for _ in range(draws):
        out = chain(copy.deepcopy(item))
        out = out[0] if isinstance(out, list) else out
        image, target = np.asarray(out["image"])[0], np.asarray(out["label"])
        assert set(np.unique(target)) <= {0.0, 1.0}
        if not three_d:  # [LA, scar] targets: scar inside the LA
            assert np.all(target[1] <= target[0])
        dice.append(_dice(target[0] > 0, image > 0.5))
    return dice


def test_stage2_spatial_augmentation_keeps_labels_binary_and_on_the_image():
    chain = _chain(_plan({"spatial": 1.0, "intensity": 0.0}), "train#preprocessing", contrast_curve=0.0)
    chain.set_random_state(seed=2)
    image, label = _blobs((128, 128))
    item = _slice_item(image, label)
    dice = _aligned_draws(chain, item, 12, three_d=False)
    assert min(dice) > 0.9, dice
    # the same check sees a label one pixel off its image
    shifted = _slice_item(image, np.roll(label, 1, axis=2))
    assert np.mean(_aligned_draws(chain, shifted, 4, three_d=False)) < 0.9


def test_stage1_spatial_augmentation_keeps_the_la_binary_and_on_the_image():
    plan = _plan({"spatial": 1.0, "intensity": 0.0}, localizer_patch=[16, 32, 32])
    chain = _chain(plan, "localizer#preprocessing", contrast_curve=0.0)  # the curve moves the 0.5 threshold
    chain.set_random_state(seed=3)
    image, label = _blobs((16, 32, 32))
    item = {"image": image, "label": (label > 0).astype(np.float32)}
    dice = _aligned_draws(chain, item, 4, three_d=True)
    assert min(dice) > 0.88, dice
    shifted = {"image": image, "label": np.roll(item["label"], 1, axis=3)}  # one voxel off along x
    assert np.mean(_aligned_draws(chain, shifted, 4, three_d=True)) < 0.88
