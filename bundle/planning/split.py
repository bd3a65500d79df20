"""Patient-level train / validation / test split and k folds, stratified by ablation state.

Scans are grouped so that nothing leaks between splits: a patient's pre- and post-ablation scans
form one group, and groups whose scans carry byte-identical label maps (the same ``label_sha1``,
e.g. one segmentation copied to two scans or a scan shipped twice) are merged (SciPy's ``DisjointSet``) and
reported. Groups are stratified by their ablation composition ("pre", "post", "pre+post", ...),
shuffled per stratum with ``np.random.default_rng(seed)``, and test / validation groups are
apportioned across strata by largest remainder so the totals match the requested fractions.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from scipy.cluster.hierarchy import DisjointSet

from bundle.data.case import ABLATION_STATES
from bundle.data.layouts import plan_scar_labels, read_dataset
from bundle.errors import DatasetError
from bundle.planning.rules import N_FOLDS, SPLIT_RULE, SPLIT_SEED, TEST_FRACTION, VAL_FRACTION

SPLITS = ("train", "validation", "test")
"""The plan's splits, in order."""


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _apportion(total: int, available: dict[str, int], weights: dict[str, float], rng) -> dict[str, int]:
    """Split ``total`` over strata proportionally to ``weights`` (largest remainder, seeded ties),
    never giving a stratum more than ``available``."""
    out = {s: 0 for s in available}
    total = min(total, sum(available.values()))
    wsum = sum(weights[s] for s in available if available[s] > 0)
    if total <= 0 or wsum <= 0:
        return out
    quota = {s: total * weights[s] / wsum if available[s] > 0 else 0.0 for s in available}
    for s in available:
        out[s] = min(int(math.floor(quota[s])), available[s])
    tie = {s: float(v) for s, v in zip(sorted(available), rng.random(len(available)))}
    while sum(out.values()) < total:
        open_ = [s for s in available if out[s] < available[s]]
        best = max(open_, key=lambda s: (quota[s] - out[s], tie[s]))
        out[best] += 1
    return out


def _composition(states: set[str]) -> str:
    return "+".join(a for a in ABLATION_STATES if a in states)


def split_patients(
    records: list[dict],
    seed: int = SPLIT_SEED,
    n_folds: int = N_FOLDS,
    test_fraction: float = TEST_FRACTION,
    val_fraction: float = VAL_FRACTION,
) -> dict:
    """Split scans into train / validation / test and k folds over train + validation.

    ``records``: dicts with ``scan`` (unique id), ``patient`` (empty: the scan is its own patient),
    ``ablation`` and ``label_sha1``; an optional ``la_voxels`` of 0 marks an empty label, which is
    never used to merge groups (empty label maps of one shape are all byte-identical).

    Sizes: ``round(fraction * n_groups)`` test groups, then validation groups, at least one each
    when there are >= 3 groups (fraction > 0); with 2 groups one is validation and none test; with 1
    everything is train. Folds: the train + validation groups dealt into ``min(n_folds, n)`` folds,
    each group in exactly one fold's validation. Returns ``{"train", "validation", "test",
    "folds", "identical_label_groups", "groups", "strata", "notes", "seed", "rule", ...}``; scan
    lists are sorted.
    """
    if not records:
        raise ValueError("cannot split: no records")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise ValueError(
            f"test_fraction ({test_fraction}) and val_fraction ({val_fraction}) must be in [0, 1) with a sum < 1"
        )
    scans = [str(r.get("scan") or "") for r in records]
    if not all(scans):
        raise ValueError("every record needs a non-empty 'scan' id")
    dup = sorted(s for s, c in Counter(scans).items() if c > 1)
    if dup:
        raise ValueError(f"scan ids must be unique; repeated: {dup}")
    by_scan = dict(zip(scans, records))

    linked = DisjointSet(scans)
    by_patient: dict[str, list[str]] = defaultdict(list)
    by_sha: dict[str, list[str]] = defaultdict(list)
    for scan, r in by_scan.items():
        by_patient[str(r.get("patient") or scan)].append(scan)
        sha = r.get("label_sha1")
        if sha and r.get("la_voxels", 1) != 0:
            by_sha[sha].append(scan)
    for members in list(by_patient.values()) + list(by_sha.values()):
        for other in members[1:]:
            linked.merge(members[0], other)
    identical = sorted(sorted(m) for m in by_sha.values() if len(m) > 1)

    # each group is named by its smallest scan id, so the grouping does not depend on record order
    members_of = dict(sorted((min(group), sorted(group)) for group in linked.subsets()))
    roots = list(members_of)
    width = max(3, len(str(len(roots) - 1)))
    group_id = {root: f"g{i:0{width}d}" for i, root in enumerate(roots)}
    groups = {scan: group_id[min(linked.subset(scan))] for scan in sorted(scans)}
    members = {group_id[r]: m for r, m in members_of.items()}
    stratum_of = {
        g: _composition({str(by_scan[s].get("ablation") or "unknown") for s in m}) for g, m in members.items()
    }

    rng = np.random.default_rng(seed)
    strata: dict[str, list[str]] = defaultdict(list)
    for g in sorted(members):
        strata[stratum_of[g]].append(g)
    strata = {s: [str(g) for g in rng.permutation(gs)] for s, gs in sorted(strata.items())}

    n = len(members)
    notes: list[str] = []
    if n >= 3:
        n_test = max(1, _round_half_up(test_fraction * n)) if test_fraction > 0 else 0
        n_val = max(1, _round_half_up(val_fraction * n)) if val_fraction > 0 else 0
        n_test = min(n_test, n - 2 if n_val else n - 1)
        n_val = min(n_val, n - n_test - 1)
    elif n == 2:
        n_test, n_val = 0, (1 if val_fraction > 0 else 0)
        notes.append("only 2 groups: no test set, one group for validation")
    else:
        n_test = n_val = 0
        notes.append("only 1 group: everything is train, no validation, test or folds")

    sizes = {s: len(gs) for s, gs in strata.items()}
    weights = {s: float(v) for s, v in sizes.items()}
    test_k = _apportion(n_test, sizes, weights, rng)
    left = {s: sizes[s] - test_k[s] for s in strata}
    val_k = _apportion(n_val, left, weights, rng)

    split_groups: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    trainval_order: list[str] = []
    for s, gs in strata.items():
        t, v = test_k[s], val_k[s]
        split_groups["test"] += gs[:t]
        split_groups["validation"] += gs[t : t + v]
        split_groups["train"] += gs[t + v :]
        trainval_order += gs[t:]

    def scans_of(gs: list[str]) -> list[str]:
        return sorted(s for g in gs for s in members[g])

    k = min(n_folds, len(trainval_order))
    folds = []
    if k >= 2:
        fold_groups: list[list[str]] = [[] for _ in range(k)]
        for i, g in enumerate(trainval_order):
            fold_groups[i % k].append(g)
        for i in range(k):
            val = fold_groups[i]
            train = [g for j in range(k) if j != i for g in fold_groups[j]]
            folds.append({"train": scans_of(train), "validation": scans_of(val)})
        if k < n_folds:
            notes.append(f"{len(trainval_order)} train + validation groups: {k} folds instead of {n_folds}")
    elif n > 1:
        notes.append("fewer than 2 train + validation groups: no folds")

    return {
        "train": scans_of(split_groups["train"]),
        "validation": scans_of(split_groups["validation"]),
        "test": scans_of(split_groups["test"]),
        "folds": folds,
        "identical_label_groups": identical,
        "groups": groups,
        "strata": {
            s: {
                "groups": sizes[s],
                "test": test_k[s],
                "validation": val_k[s],
                "train": sizes[s] - test_k[s] - val_k[s],
            }
            for s in strata
        },
        "n_groups": n,
        "notes": notes,
        "seed": seed,
        "n_folds": n_folds,
        "test_fraction": test_fraction,
        "val_fraction": val_fraction,
        "rule": SPLIT_RULE,
    }


def split_scans(plan: dict, split: str, fold: int | None = None) -> list[str]:
    """The scans of ``split`` (``train``, ``validation``, ``test``) of the plan; with ``fold`` k, training and
    validation are those of the plan's k-th cross-validation fold (the test split is every fold's).

    Raises:
        ValueError: an unknown split, or a fold the plan does not have.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if fold is None or split == "test":
        return list(plan["split"][split])
    folds = plan["split"].get("folds") or []
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(folds):
        raise ValueError(f"fold {fold!r} is not one of the plan's {len(folds)} folds (0 to {len(folds) - 1})"
                         if folds else f"fold {fold!r}: the plan has no cross-validation folds (too few patients)")
    return list(folds[fold][split])


def split_records(plan: dict, split: str, dataset_dir: str | Path, layout: str, csv: str | None = None,
                  fold: int | None = None) -> list[dict]:
    """The dataset's records of ``split`` (``train``, ``validation``, ``test``) of the plan, in plan order (of its
    ``fold``-th cross-validation fold when given: :func:`split_scans`).

    Raises:
        DatasetError: a scan named by the plan is not in the dataset.
    """
    names = split_scans(plan, split, fold)
    label_set = plan_scar_labels(plan)  # the plan's label set travels with each record
    by_scan = {r["scan"]: {**r, "scar_labels": label_set} for r in read_dataset(dataset_dir, layout, csv=csv)}
    missing = [s for s in names if s not in by_scan]
    if missing:
        raise DatasetError(dataset_dir, f"scans of the plan's {split} split are missing: {missing[:5]}")
    return [by_scan[s] for s in names]
