"""Synthetic LGE phantoms: the built-in default dataset (see ``generate``)."""

from bundle.data.phantom.generate import ScanSpec, cohort, generate_cohort, generate_scan
from bundle.data.phantom.profiles import PROFILES, Profile, get_profile

__all__ = ["PROFILES", "Profile", "ScanSpec", "cohort", "generate_cohort", "generate_scan", "get_profile"]
