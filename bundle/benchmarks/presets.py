"""The planner's profiles as benchmark presets: what the planner decides for the paper's patch under each profile.

The patch is the paper's 256 x 256 (:data:`~bundle.planning.rules.REFERENCE_PATCH`), capped by the profile's
``max_patch``; batch and widths are the planner's own decisions for it (:func:`~bundle.planning.planner.decide_batch`,
:func:`~bundle.planning.planner.decide_network`): ``paper`` 256 x 256, batch 8, Gl 32..512, Gs and Ga 32; ``cpu``
128 x 128, batch 4, Gl 16..128, Gs and Ga 16.
"""

from __future__ import annotations

from bundle.planning import rules
from bundle.planning.planner import decide_batch, decide_network

WHOLE_SCAN_ZYX = (88, 576, 576)
"""A whole scan of the 2018 Atrial Segmentation Challenge's size (z, y, x; 0.625 mm isotropic), for the inference
benchmark."""


def preset(profile: str = rules.DEFAULT_PROFILE, **given: object) -> dict:
    """Stage 2's patch, batch and widths under ``profile``; any of them ``given`` (not None) replaces the profile's."""
    if profile not in rules.PROFILES:
        raise ValueError(f"unknown preset {profile!r}; choose one of {sorted(rules.PROFILES)}")
    side = min(rules.REFERENCE_PATCH[0], int(rules.PROFILES[profile]["max_patch"]))
    patch = (side, side)
    network = decide_network(patch, profile)["value"]
    sizes = {"profile": profile, "patch": patch, "batch_size": decide_batch(patch, profile)["value"],
             "gl_widths": tuple(network["gl_widths"]), "gs_width": network["gs_width"],
             "lstm_channels": network["lstm_channels"]}
    return {**sizes, **{key: value for key, value in given.items() if value is not None}}
