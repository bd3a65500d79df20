"""Time synthesizing and planning a phantom cohort, and nnU-Net v2's planner on the same scans.

nnU-Net is optional and run as its own commands (``nnUNetv2_extract_fingerprint``,
``nnUNetv2_plan_experiment``, ``nnUNetv2_preprocess``) from a separate environment, so its
dependencies never enter this bundle's. Its 2D decisions are read back from its plans file.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from bundle.atomic import atomic_write_text
from bundle.data.io import write_image
from bundle.data.layouts import load_case, read_dataset
from bundle.data.phantom.dataset import synthesize_dataset
from bundle.ownership import claim_folder, replace_folder
from bundle.planning.run import plan_dataset

NNUNET_DATASET_ID = 501

BENCHMARK_KIND = "planning benchmark"
NNUNET_KIND = "nnU-Net benchmark folder"
"""Kinds of folder (:mod:`bundle.ownership`) the planning benchmark claims: its output and nnU-Net's work folders."""


def export_nnunet_raw(root: Path, layout: str, raw: Path) -> Path:
    """Write the dataset in nnU-Net v2's raw format (labels 0 background, 1 LA, 2 scar)."""
    folder = raw / f"Dataset{NNUNET_DATASET_ID:03d}_LAScar"
    records = read_dataset(root, layout)
    for r in records:
        case = load_case(r)
        write_image(case.image, folder / "imagesTr" / f"{case.scan}_0000.nii.gz", case, dtype=np.float32)
        write_image(case.label, folder / "labelsTr" / f"{case.scan}.nii.gz", case, dtype=np.uint8)
    meta = {
        "channel_names": {"0": "MRI"},  # not "CT": nnU-Net z-scores per image
        "labels": {"background": 0, "left_atrium": 1, "scar": 2},
        "numTraining": len(records),
        "file_ending": ".nii.gz",
    }
    atomic_write_text(folder / "dataset.json", json.dumps(meta, indent=2))
    return folder


def _timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def run_nnunet(root: Path, layout: str, work: Path, nnunet_bin: Path, processes: int = 2) -> dict:
    """Time nnU-Net v2's fingerprint, planning and 2D preprocessing; return its 2D decisions."""
    raw, pre, res = work / "nnUNet_raw", work / "nnUNet_preprocessed", work / "nnUNet_results"
    for p in (raw, pre, res):  # an earlier benchmark's nnU-Net folders; anything else is refused, not deleted
        replace_folder(p, NNUNET_KIND)
    t = time.perf_counter()
    export_nnunet_raw(root, layout, raw)
    export_s = time.perf_counter() - t
    env = {**os.environ, "nnUNet_raw": str(raw), "nnUNet_preprocessed": str(pre), "nnUNet_results": str(res)}
    d = str(NNUNET_DATASET_ID)
    fp_s = _timed([str(nnunet_bin / "nnUNetv2_extract_fingerprint"), "-d", d, "-np", str(processes)], env)
    plan_s = _timed([str(nnunet_bin / "nnUNetv2_plan_experiment"), "-d", d], env)
    prep_s = _timed([str(nnunet_bin / "nnUNetv2_preprocess"), "-d", d, "-c", "2d", "-np", str(processes)], env)
    plans = json.loads(next(pre.glob("Dataset*/nnUNetPlans.json")).read_text())
    c2d = plans["configurations"]["2d"]
    return {
        "export_to_raw_seconds": round(export_s, 1),
        "fingerprint_seconds": round(fp_s, 1),
        "plan_seconds": round(plan_s, 1),
        "preprocess_2d_seconds": round(prep_s, 1),
        "fingerprint_plus_plan_seconds": round(fp_s + plan_s, 1),
        "plan_and_preprocess_2d_seconds": round(fp_s + plan_s + prep_s, 1),
        "2d": {k: c2d.get(k) for k in ("patch_size", "batch_size", "spacing", "normalization_schemes")},
        "2d_features_per_stage": c2d.get("architecture", {}).get("arch_kwargs", {}).get("features_per_stage"),
        "3d_fullres_patch_size": plans["configurations"].get("3d_fullres", {}).get("patch_size"),
    }


def benchmark(
    out: str | Path = "bench/planning",
    n_patients: int = 12,
    profile: str = "miccai2018",
    seed: int = 0,
    nnunet_bin: str | None = None,
) -> dict:
    """Synthesize, plan (timed) and optionally run nnU-Net's planner; write ``results.json``. ``out`` is claimed
    first (:mod:`bundle.ownership`): absent, empty or an earlier benchmark's."""
    out = claim_folder(out, BENCHMARK_KIND)
    data = out / f"{profile}_data"
    t = time.perf_counter()
    manifest = synthesize_dataset(data, n_patients, profile, "datalist", seed, overwrite=True)
    synth_s = time.perf_counter() - t
    t = time.perf_counter()
    plan = plan_dataset(data, "datalist", name=f"bench_{profile}", out=out / f"plan_{profile}.json")
    plan_s = time.perf_counter() - t
    result = {
        "profile": profile,
        "n_scans": manifest["n_scans"],
        "synthesize_seconds": round(synth_s, 1),
        "plan_seconds": round(plan_s, 1),
        "decisions": {k: v["value"] for k, v in plan["decisions"].items() if k != "normalization"},
        "normalization": plan["decisions"]["normalization"]["value"]["scheme"],
        "split_sizes": {k: len(plan["split"][k]) for k in ("train", "validation", "test")},
    }
    if nnunet_bin:
        result["nnunet"] = run_nnunet(data, "datalist", out / "nnunet", Path(nnunet_bin))
    atomic_write_text(out / f"results_{profile}.json", json.dumps(result, indent=2) + "\n")
    return result
