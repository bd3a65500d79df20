"""The stage-1 check on every whole scan of datasets (bundle.evaluation.stage1)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from bundle.data.phantom.dataset import scan_families
from bundle.evaluation.stage1 import MISSED_RECALL, check, locate_dataset, summarize
from bundle.inference.localizer import CROP, NO_LA, OK, Location
from bundle.preprocessing.roi import Roi, mask_box


class ScriptedLocator:
    """Stage 1 with a scripted answer per call: ``"la"`` the LA's box, ``"half"`` its lower half in z, ``"miss"`` a
    box beside it, ``"none"`` no LA, ``"crop"`` a crop."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), 0
        self.network = torch.nn.Identity()
        self.label = None

    def locate(self, image, spacing):
        answer = self.answers[self.calls % len(self.answers)]
        self.calls += 1
        shape = tuple(np.asarray(image).shape[-3:])
        if answer == "crop":
            return Location(CROP, Roi.whole(shape), "a crop")
        if answer == "none":
            return Location(NO_LA, None, "no LA")
        lo, hi = mask_box(self.label)
        if answer == "half":
            hi = (lo[0] + max(1, (hi[0] - lo[0]) // 2), *hi[1:])
        if answer == "miss":
            lo, hi = (lo[0], lo[1], 0), (hi[0], hi[1], 1)
        return Location(OK, Roi(tuple(int(v) for v in lo), tuple(int(v) for v in hi)), answer)


@pytest.fixture()
def locator_of(monkeypatch):
    """A ScriptedLocator that sees each scan's label (the check passes the locator the image only)."""
    import bundle.evaluation.stage1 as stage1

    real = stage1.load_split

    def make(answers):
        loc = ScriptedLocator(answers)
        labels, scripted = {}, loc.locate

        def with_labels(*args, **kwargs):
            cases = list(real(*args, **kwargs))
            labels.update({id(c["image"]): np.asarray(c["label"]) > 0 for c in cases})
            return cases

        def locate(image, spacing):
            loc.label = labels[id(image)]
            return scripted(image, spacing)

        loc.locate = locate
        monkeypatch.setattr(stage1, "load_split", with_labels)
        return loc

    return make


def test_every_split_is_checked_crops_are_skipped_and_recall_is_the_la_share(tiny_dataset, locator_of):
    root, plan = tiny_dataset
    answers = ["la", "half", "miss", "none", "crop"]
    rows = locate_dataset(locator_of(answers), root, plan, "datalist")
    n_scans = sum(len(plan["split"][s]) for s in ("train", "validation", "test"))
    assert len(rows) == n_scans - n_scans // len(answers)  # every fifth is a crop
    assert {r["split"] for r in rows} == {"train", "validation", "test"}
    recalls = [r["roi_recall"] for r in rows]
    assert recalls[0] == 1.0 and 0.3 < recalls[1] < 0.8 and recalls[2] == 0.0 and recalls[3] == 0.0
    assert rows[3]["status"] == NO_LA and rows[3]["roi_share"] == 0.0
    families = scan_families(root)
    assert all(r["intensity"] == families[r["scan"]]["intensity"] for r in rows)


def test_the_summary_counts_missed_scans_and_their_families():
    rows = [{"dataset": "d", "split": "test", "scan": f"s{i}", "status": OK, "roi_recall": r, "roi_share": 0.1,
             "intensity": fam, "grid": "utah"}
            for i, (r, fam) in enumerate([(1.0, "lge"), (MISSED_RECALL, "lge"), (0.9, "random"), (0.0, "random")])]
    s = summarize(rows)
    assert (s["scans"], s["missed"], s["missed_entirely"]) == (4, 2, 1)
    assert s["roi_recall_min"] == 0.0 and s["roi_recall_mean"] == pytest.approx((1.0 + MISSED_RECALL + 0.9) / 4)
    assert s["missed_by_family"] == {"intensity=random": 2, "grid=utah": 2}
    assert s["missed_scans"] == ["d:test:s2 ok 0.90", "d:test:s3 ok 0.00"]
    assert summarize([])["scans"] == 0


def test_check_logs_each_dataset_and_the_total(tiny_dataset, locator_of, caplog):
    root, plan = tiny_dataset
    with caplog.at_level(logging.INFO, logger="bundle.evaluation.stage1"):
        out = check(locator_of(["la", "miss"]), [{"dataset_dir": root, "plan": plan, "layout": "datalist"}])
    assert out["all"]["missed"] == out["datasets"][str(root)]["missed"] > 0
    assert f"stage 1 on {root}" in caplog.text and "missed" in caplog.text and "by family" in caplog.text


def test_a_dataset_that_cannot_be_read_is_reported_and_the_others_are_checked(tiny_dataset, locator_of, tmp_path, caplog):
    root, plan = tiny_dataset
    datasets = [{"dataset_dir": tmp_path / "absent", "plan_file": tmp_path / "absent.json"},
                {"plan_file": tmp_path / "absent.json"},
                {"dataset_dir": root, "plan": plan}]
    with caplog.at_level(logging.INFO, logger="bundle.evaluation.stage1"):
        out = check(locator_of(["la"]), datasets)
    assert "absent.json" in out["datasets"][str(tmp_path / "absent")]["error"]
    assert "needs dataset_dir and plan_file" in out["datasets"]["dataset 2"]["error"]
    assert out["all"]["scans"] == out["datasets"][str(root)]["scans"] > 0 and out["all"]["missed"] == 0
    assert f"stage 1 not checked on {tmp_path / 'absent'}" in caplog.text
