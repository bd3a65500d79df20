"""The command-line tools, one module each, sharing one start-up and one way of ending on bad input.

Installed (``pip install -e .``) they are the ``jasgan-*`` entry points of ``pyproject.toml``; from the bundle root,
without installing (the Model Zoo convention), ``python -m bundle.cli.<module>`` runs the same:

============================  ===================================  ==============================================
entry point                   from the bundle root                 what
============================  ===================================  ==============================================
``jasgan-synthesize``         ``python -m bundle.cli.synthesize``  write the synthetic phantom dataset
``jasgan-plan``               ``python -m bundle.cli.plan``        fingerprint a dataset and write its plan
``jasgan-quantify``           ``python -m bundle.cli.quantify``    scar report, surface map and qc of masks
``jasgan-qc-correlation``     ``python -m bundle.cli.qc_correlation``  qc_score and qc against the Dice
``jasgan-baselines``          ``python -m bundle.cli.baselines``   the classical scar methods
``jasgan-compare``            ``python -m bundle.cli.compare``     the paper's comparison tables
``jasgan-benchmark``          ``python -m bundle.cli.benchmark``   timings: planning, training, inference, ...
``jasgan-nnunet``             ``python -m bundle.cli.nnunet``      nnU-Net v2 on the plan's folds: export, import
============================  ===================================  ==============================================

Bad input (a missing or damaged file, a wrong value, an output folder the bundle did not write) ends every tool the
same way: ``error: <what and where>`` on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping

from bundle.errors import DatasetError

BAD_INPUT_STATUS = 2
"""Exit status of a tool stopped by bad input."""


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr at ``level`` with time, level and logger name."""
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(component: Callable | Mapping[str, Callable]) -> None:
    """``fire.Fire(component)``; bad input (a file, a value) ends with its one-line message and exit status 2."""
    import fire

    try:
        fire.Fire(component)
    except (DatasetError, ValueError, FileExistsError) as err:  # ValueError covers ForeignPathError (refused output)
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(BAD_INPUT_STATUS) from None
