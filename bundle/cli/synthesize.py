"""Write the built-in synthetic LGE phantom dataset.

    jasgan-synthesize --out data/phantom --n_patients 16 --profile miccai2018 --layout datalist
"""

from __future__ import annotations

from bundle.cli import run, setup_logging
from bundle.data.phantom.dataset import synthesize_dataset


def main(
    out: str = "data/phantom",
    n_patients: int = 16,
    profile: str = "miccai2018",
    layout: str = "datalist",
    seed: int = 0,
    overwrite: bool = False,
    log_level: str = "INFO",
) -> None:
    """Generate ``n_patients`` phantom patients (profiles: miccai2018, siemens, tinyfov, tiny; layouts:
    datalist, miccai2018, lascarqs2022) into ``out``."""
    setup_logging(log_level)
    manifest = synthesize_dataset(out, n_patients, profile, layout, seed, overwrite)
    print(f"wrote {manifest['n_scans']} scans ({manifest['n_pre']} pre, {manifest['n_post']} post) "
          f"to {out} in {manifest['seconds']:.1f} s")


def cli() -> None:
    """``jasgan-synthesize``."""
    run(main)


if __name__ == "__main__":
    cli()
