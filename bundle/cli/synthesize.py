"""Write the built-in synthetic LGE phantom dataset.

    jasgan-synthesize --out data/phantom --n_patients 16 --profile mixed --layout datalist
    jasgan-synthesize --out data/dark --n_patients 4 --families '{"intensity": ["dark"], "grid": ["miccai2018"]}'
    jasgan-synthesize --out data/atria --profile miccai2018 --layout miccai2018 --wall_files False --intensities mixed
"""

from __future__ import annotations

import json

from bundle.cli import run, setup_logging
from bundle.data.phantom.dataset import synthesize_dataset


def _families(value: str | dict | None) -> dict | None:
    """``--families`` as a JSON object (or the dict fire parsed) ``{family: [members]}``."""
    if value is None or isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"--families must be a JSON object {{family: [members]}}: {err}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"--families must be a JSON object {{family: [members]}}, got {value!r}")
    return parsed


def main(
    out: str = "data/phantom",
    n_patients: int = 16,
    profile: str = "mixed",
    layout: str = "datalist",
    seed: int = 0,
    overwrite: bool = False,
    families: str | dict | None = None,
    intensities: str = "raw",
    wall_files: bool = True,
    log_level: str = "INFO",
) -> None:
    """Generate ``n_patients`` phantom patients into ``out`` (profiles: mixed, utah, miccai2018, siemens, tinyfov,
    tiny; layouts: datalist, miccai2018, lascarqs2022; ``families``: e.g. ``{"intensity": ["dark"]}``, see
    ``bundle/data/phantom/families.py``; ``intensities``: raw, zscore or mixed; ``wall_files False``: the 2018
    challenge's exact form, ``laendo.nrrd`` without ``lawall.nrrd``)."""
    setup_logging(log_level)
    manifest = synthesize_dataset(out, n_patients, profile, layout, seed, overwrite, families=_families(families),
                                  intensities=intensities, wall_files=wall_files)
    print(f"wrote {manifest['n_scans']} scans ({manifest['n_pre']} pre, {manifest['n_post']} post) "
          f"to {out} in {manifest['seconds']:.1f} s")


def cli() -> None:
    """``jasgan-synthesize``."""
    run(main)


if __name__ == "__main__":
    cli()
