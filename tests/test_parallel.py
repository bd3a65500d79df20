"""bundle.parallel: per-scan work in processes gives the same plan and cache as in one process, in order, with a
bad scan reported and the others kept."""

from __future__ import annotations

import json
import math
import pickle
import shutil

import numpy as np
import pytest

from bundle.errors import DatasetError, ForeignPathError
from bundle.parallel import PARALLEL_MIN_ITEMS, default_workers, ordered_map
from bundle.planning.run import plan_dataset
from bundle.preprocessing.cache import cache_split


@pytest.mark.parametrize("workers", [1, 2])
def test_ordered_map_keeps_the_order_and_returns_each_error_with_its_item(workers):
    items = [4.0, -1.0, 9.0, 16.0, -4.0, 25.0]
    out = list(ordered_map(math.sqrt, items, workers))
    assert [item for item, _, _ in out] == items
    assert [value for _, value, err in out if err is None] == [2.0, 3.0, 4.0, 5.0]
    errors = [(item, err) for item, _, err in out if err is not None]
    assert [item for item, _ in errors] == [-1.0, -4.0]
    assert all(isinstance(err, ValueError) and "math domain error" in str(err) for _, err in errors)


def test_errors_survive_the_trip_between_processes():
    for cls in (DatasetError, ForeignPathError):
        err = pickle.loads(pickle.dumps(cls("data/a.nrrd", "truncated file")))
        assert type(err) is cls and (err.path, err.problem) == ("data/a.nrrd", "truncated file")
        assert str(err) == "data/a.nrrd: truncated file"


def test_default_workers():
    assert default_workers(PARALLEL_MIN_ITEMS - 1) == 1  # a test-sized dataset: no process to start
    assert 1 <= default_workers(100) <= 4
    assert default_workers(3, workers=2) == 2 and default_workers(100, workers=0) == 1


def test_plan_and_cache_in_two_processes_equal_one(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    root = tmp_path / "damaged"
    shutil.copytree(dataset, root)
    bad = root / "imagesTr" / "P002_pre.nii.gz"
    bad.write_bytes(bad.read_bytes()[:200])
    plans = {w: plan_dataset(root, "datalist", name="t", out=tmp_path / f"plan{w}.json", workers=w) for w in (1, 2)}
    assert json.loads((tmp_path / "plan1.json").read_text()) == json.loads((tmp_path / "plan2.json").read_text())
    (excluded,) = plans[2]["excluded"]  # the bad scan is reported, named, and the others planned
    assert excluded["scan"] == "P002_pre" and "P002_pre.nii.gz" in excluded["error"]
    plan = plans[1]
    for w in (1, 2):
        assert cache_split(plan, "train", root, "datalist", tmp_path / f"cache{w}", workers=w) > 0
    for record in plan["split"]["train"]:
        entry = {"scan": record} if isinstance(record, str) else record
        one = np.load(next((tmp_path / "cache1" / "t").glob(f"{entry['scan']}-*.npz")))
        two = np.load(next((tmp_path / "cache2" / "t").glob(f"{entry['scan']}-*.npz")))
        assert one.files == two.files and all(np.array_equal(one[k], two[k]) for k in one.files)
