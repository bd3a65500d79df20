"""Dataset fingerprint, rule-based experiment planning and patient-level splitting.

The planner (after nnU-Net v2) turns a dataset into a JSON plan: ``fingerprint`` (per-scan and
dataset statistics), ``decisions`` (target spacing, patch, batch, normalisation, networks; each
with the rule of :mod:`bundle.planning.rules` that set it and why) and ``split``.
"""

from bundle.data.io import orientation_code
from bundle.planning.fingerprint import fingerprint_case, fingerprint_dataset, label_sha1
from bundle.planning.planner import decision_values, load_plan, make_plan, plan_decisions, save_plan
from bundle.planning.split import split_patients

__all__ = [
    "decision_values",
    "fingerprint_case",
    "fingerprint_dataset",
    "label_sha1",
    "load_plan",
    "make_plan",
    "orientation_code",
    "plan_decisions",
    "save_plan",
    "split_patients",
]
