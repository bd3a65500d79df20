"""Shared start-up of the command-line scripts: import path and logging."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # scripts run as `python scripts/x.py` from the bundle root
    sys.path.insert(0, str(ROOT))


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(main) -> None:
    """``fire.Fire(main)``; bad input (a file, a value) ends with its one-line message and exit status 2."""
    import fire

    from bundle.errors import DatasetError

    try:
        fire.Fire(main)
    except (DatasetError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
