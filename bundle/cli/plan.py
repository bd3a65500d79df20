"""Fingerprint a dataset and write its plan (patch size, normalisation, networks, split).

    jasgan-plan --root data/phantom --layout datalist --name phantom
    jasgan-plan --root "/data/MICCAI2018" --layout miccai2018 --name miccai2018
    jasgan-plan --from_plan plans/phantom.json --profile paper --name phantom-paper

``--from_plan`` decides again from a plan's stored fingerprint for another profile, without reading a scan; the
split stays.
"""

from __future__ import annotations

import time
from pathlib import Path

from bundle.cli import run, setup_logging
from bundle.planning import rules
from bundle.planning.planner import load_plan, replan, save_plan
from bundle.planning.run import plan_dataset


def main(
    root: str = "data/phantom",
    layout: str = "datalist",
    name: str | None = None,
    out: str | None = None,
    csv: str | None = None,
    seed: int = rules.SPLIT_SEED,
    n_folds: int = rules.N_FOLDS,
    test_fraction: float = rules.TEST_FRACTION,
    val_fraction: float = rules.VAL_FRACTION,
    profile: str = rules.DEFAULT_PROFILE,
    from_plan: str | None = None,
    scar_labels: str | None = None,
    workers: int | None = None,
    log_level: str = "INFO",
) -> None:
    """Plan the dataset at ``root`` (layouts: datalist, miccai2018, lascarqs2022) into
    ``plans/<name>.json`` (or ``out``); ``profile`` is one of the planner's profiles (``paper``, the default, or ``cpu``). With ``from_plan``, re-plan that
    plan's fingerprint for ``profile`` instead. ``scar_labels``: ``manual``, ``toolkit`` or ``none`` (default: the
    layout's; the 2018 challenge has no scar labels, so ``none``). ``workers``: processes that read the scans
    (default: one per core, at most 4, for 8 scans or more); the plan does not depend on it."""
    setup_logging(log_level)
    start = time.perf_counter()
    if from_plan is not None:
        plan = replan(load_plan(from_plan), profile, name)
        save_plan(plan, out or Path(from_plan).parent / f"{plan['name']}.json")
    else:
        plan = plan_dataset(root, layout, name, out, csv, seed, n_folds, test_fraction, val_fraction, profile,
                            scar_labels, workers)
    d = {k: v["value"] for k, v in plan["decisions"].items()}
    s = plan["split"]
    print(f"plan {plan['name']}: {len(plan['fingerprint']['cases'])} scans, {len(plan.get('excluded', []))} excluded, "
          f"{time.perf_counter() - start:.1f} s")
    print(f"  target spacing {d['target_spacing']}, patch {d['patch_size']}, batch {d['batch_size']}, "
          f"normalisation {d['normalization']['scheme']}, Gl widths {d['network']['gl_widths']}")
    print(f"  split: {len(s['train'])} train / {len(s['validation'])} validation / {len(s['test'])} test scans, "
          f"{len(s['folds'])} folds")


def cli() -> None:
    """``jasgan-plan``."""
    run(main)


if __name__ == "__main__":
    cli()
