"""Classical two-phase scar baselines: scar found by an intensity rule inside a given LA wall.

These are the non-learning comparators of the JAS-GAN paper (Chen J, Yang G, et al., "JAS-GAN:
Generative adversarial network based joint atrium and scar segmentations on unbalanced atrial
targets", IEEE JBHI 26(1), 2022; Table V, "2SD" and "Otsu") and of the Cardiac MRI Toolkit
(CARMA, University of Utah). Phase one gives the LA wall and the blood pool (the LA cavity);
phase two thresholds the raw (not z-scored) LGE intensities of the wall:

``2sd``, ``3sd``
    wall voxels brighter than mean(pool) + n * SD(pool), strictly (``>``); SD is the sample SD
    (``ddof=1``).
``otsu``
    wall voxels brighter than (``>``) ``skimage.filters.threshold_otsu`` of the wall intensities.
``iir1.2``, ``iir1.32``
    image-intensity ratio: wall voxels with intensity / mean(pool) strictly above 1.2 or 1.32.
``kmeans``
    the toolkit's automatic k-means scar (Perry et al., SPIE Medical Imaging 2012),
    :func:`bundle.data.toolkit.kmeans_scar`.

On the toolkit's real crop (``autoscar-*.nrrd``, README of the CARMA fixtures) these rules give
the README's values to its printed precision (pool mean 204.2, SD 16.6; scar % of wall and Dice
against the toolkit's scar: 2SD 16.6 %, 0.961; 3SD 9.3 %, 0.756; Otsu 36.1 %, 0.596; IIR > 1.2
12.2 %, 0.888; > 1.32 5.4 %, 0.524). There ``ddof`` 0 or 1 and ``>`` or ``>=`` give the very same
masks (2284, 1285, 4983, 1686 and 750 voxels: no intensity lies on a threshold and the two SDs
differ by 1e-4), so the sample SD (as the toolkit's z-score) and strict ``>`` are a choice, not a fit.

Every rule returns no scar for an empty wall or an empty pool (no LA region to compare with); the
SD rules also need two pool voxels (a sample SD), and IIR a positive pool mean (else ValueError).

Wall and pool of a scan come from the dataset's cavity and wall where the layout gives them
(miccai2018, lascarqs2022), else from its LA, or from a predicted LA (``la_from``):
wall = :func:`bundle.data.wall.derived_wall` (LA minus its 2.5 mm axial erosion), pool = LA minus wall.
:func:`run_baselines` writes each method's masks and report in the format of
:mod:`bundle.data.predictions`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from skimage.filters import threshold_otsu

from bundle.batch import BATCH_ERRORS, failed_row
from bundle.data.case import Case
from bundle.data.labels import compose_label, la_mask
from bundle.data.layouts import load_case
from bundle.data.predictions import PREDICTION_KIND, drop_stale, read_prediction, write_prediction, write_report
from bundle.data.toolkit import REFERENCE as KMEANS_REFERENCE
from bundle.data.toolkit import kmeans_scar
from bundle.data.wall import WALL_THICKNESS_MM
from bundle.ownership import claim_folder
from bundle.planning.planner import load_plan
from bundle.planning.split import split_records
from bundle.quantification.burden import axial_wall, quantify

logger = logging.getLogger(__name__)

BASELINES_KIND = "baseline predictions"
"""The kind of folder (:mod:`bundle.ownership`) that holds one prediction folder per baseline method."""

SD_MULTIPLES = {"2sd": 2.0, "3sd": 3.0}
"""Blood-pool SD rules: method name -> n in mean(pool) + n * SD(pool)."""

SD_DDOF = 1
"""Delta degrees of freedom of the pool SD: the sample SD (ddof 0 gives the same CARMA masks)."""

IIR_RATIOS = {"iir1.2": 1.2, "iir1.32": 1.32}
"""Image-intensity-ratio rules: method name -> ratio of wall intensity to mean pool intensity."""

PAPER = (
    "Chen J, Yang G, et al. JAS-GAN: Generative adversarial network based joint atrium and scar "
    "segmentations on unbalanced atrial targets. IEEE J Biomed Health Inform 26(1), 2022 (Table V)."
)

ScarRule = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``rule(image, pool, wall) -> scar``: raw intensities and bool masks, all ``(z, y, x)``; scar inside the wall."""


# ------------------------------------------------------------------------------------------- rules


def _regions(image: np.ndarray, pool: np.ndarray, wall: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The image as an array and pool/wall as bool masks, checked for equal shapes."""
    image = np.asarray(image)
    pool = np.asarray(pool) > 0
    wall = np.asarray(wall) > 0
    if not (image.shape == pool.shape == wall.shape):
        raise ValueError(f"shapes differ: image {image.shape}, pool {pool.shape}, wall {wall.shape}")
    return image, pool, wall


def _values(image: np.ndarray, mask: np.ndarray, what: str) -> np.ndarray:
    values = image[mask].astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"the image has non-finite intensities in the {what}")
    return values


def _above(image: np.ndarray, wall: np.ndarray, threshold: float) -> np.ndarray:
    """Wall voxels strictly brighter than ``threshold``."""
    scar = np.zeros(image.shape, dtype=bool)
    scar[wall] = image[wall].astype(np.float64) > threshold
    return scar


def pool_statistics(image: np.ndarray, pool: np.ndarray) -> tuple[float, float]:
    """Mean and sample SD (``ddof`` :data:`SD_DDOF`) of the raw intensities of the blood pool."""
    values = _values(np.asarray(image), np.asarray(pool) > 0, "blood pool")
    if values.size <= SD_DDOF:
        raise ValueError(f"the blood pool needs more than {SD_DDOF} voxel(s) for its SD, found {values.size}")
    return float(values.mean()), float(values.std(ddof=SD_DDOF))


def sd_scar(image: np.ndarray, pool: np.ndarray, wall: np.ndarray, n_sd: float) -> np.ndarray:
    """Wall voxels with intensity > mean(pool) + ``n_sd`` * SD(pool) (sample SD).

    No scar for an empty wall or a pool of fewer than two voxels.
    """
    image, pool, wall = _regions(image, pool, wall)
    if not wall.any() or pool.sum() <= SD_DDOF:
        return np.zeros(image.shape, dtype=bool)
    _values(image, wall, "wall")
    mean, sd = pool_statistics(image, pool)
    return _above(image, wall, mean + n_sd * sd)


def otsu_scar(image: np.ndarray, pool: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """Wall voxels with intensity > Otsu's threshold of the wall intensities (``skimage``, 256 bins).

    The pool is not used by the rule; an empty wall or an empty pool gives no scar, as does a wall of
    constant intensity (the threshold is that intensity).
    """
    image, pool, wall = _regions(image, pool, wall)
    if not wall.any() or not pool.any():
        return np.zeros(image.shape, dtype=bool)
    return _above(image, wall, float(threshold_otsu(_values(image, wall, "wall"))))


def iir_scar(image: np.ndarray, pool: np.ndarray, wall: np.ndarray, ratio: float) -> np.ndarray:
    """Wall voxels with image-intensity ratio (intensity / mean(pool)) > ``ratio``.

    No scar for an empty wall or pool. Raises ValueError when the pool mean is not positive.
    """
    image, pool, wall = _regions(image, pool, wall)
    if not wall.any() or not pool.any():
        return np.zeros(image.shape, dtype=bool)
    _values(image, wall, "wall")
    mean = float(_values(image, pool, "blood pool").mean())
    if mean <= 0:
        raise ValueError(f"the image-intensity ratio needs a positive blood-pool mean, found {mean:g}")
    return _above(image, wall, ratio * mean)


def toolkit_kmeans_scar(image: np.ndarray, pool: np.ndarray, wall: np.ndarray) -> np.ndarray:
    """The Cardiac MRI Toolkit's k-means scar (:func:`bundle.data.toolkit.kmeans_scar`); no scar without a pool."""
    image, pool, wall = _regions(image, pool, wall)
    if not wall.any() or not pool.any():
        return np.zeros(image.shape, dtype=bool)
    return kmeans_scar(image, pool, wall)


METHODS: dict[str, ScarRule] = {
    **{name: partial(sd_scar, n_sd=n) for name, n in SD_MULTIPLES.items()},
    "otsu": otsu_scar,
    **{name: partial(iir_scar, ratio=r) for name, r in IIR_RATIOS.items()},
    "kmeans": toolkit_kmeans_scar,
}
"""Registry of the baselines: name (with its parameter) -> ``rule(image, pool, wall) -> bool scar``."""

DEFAULT_METHODS = tuple(METHODS)

DESCRIPTIONS = {
    **{name: f"wall intensity > mean(pool) + {n:g} * SD(pool, ddof={SD_DDOF})" for name, n in SD_MULTIPLES.items()},
    "otsu": "wall intensity > skimage threshold_otsu(wall intensities)",
    **{name: f"wall intensity / mean(pool) > {r:g}" for name, r in IIR_RATIOS.items()},
    "kmeans": "Cardiac MRI Toolkit k-means (K = 4) scar: " + KMEANS_REFERENCE,
}
"""One line per method for the reports."""


def check_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Method names (a sequence or a comma-separated string), deduplicated in order and checked.

    Raises:
        ValueError: no method, or a name not in :data:`METHODS` (the message lists the known ones).
    """
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    names = list(dict.fromkeys(str(n).strip() for n in names if str(n).strip()))
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"unknown baseline method(s) {unknown}; known methods: {', '.join(METHODS)}")
    if not names:
        raise ValueError(f"no baseline method given; known methods: {', '.join(METHODS)}")
    return tuple(names)


def scar_masks(
    image: np.ndarray, pool: np.ndarray, wall: np.ndarray, methods: str | Sequence[str] = DEFAULT_METHODS
) -> dict[str, np.ndarray]:
    """Scar mask of each method (bool, ``(z, y, x)``) for one image with its pool and wall."""
    return {name: METHODS[name](image, pool, wall) for name in check_methods(methods)}


# --------------------------------------------------------------------------------- pool and wall


def la_regions(la: np.ndarray, reference: sitk.Image | Case) -> tuple[np.ndarray, np.ndarray]:
    """``(pool, wall)`` of an LA mask on ``reference``'s grid: wall = :func:`bundle.data.wall.derived_wall` (2.5 mm,
    peeled in the axial plane whatever the stored axis order, :func:`bundle.quantification.burden.axial_wall`),
    pool = LA minus wall."""
    la = np.asarray(la) > 0
    wall = axial_wall(la, reference)
    return la & ~wall, wall


def case_regions(case: Case, la: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(la, pool, wall, source)`` of a case: its given cavity and wall, else derived from its LA.

    ``la`` (a predicted LA) overrides the case's labels; the wall is then derived from it.
    ``source`` says which: ``"given"``, ``"derived"`` or ``"predicted"``.
    """
    if la is not None:
        pool, wall = la_regions(la, case)
        return np.asarray(la) > 0, pool, wall, "predicted"
    if case.cavity is not None and case.wall is not None:
        wall = np.asarray(case.wall) > 0
        pool = (np.asarray(case.cavity) > 0) & ~wall
        return pool | wall, pool, wall, "given"
    la = la_mask(case.label)
    pool, wall = la_regions(la, case)
    return la, pool, wall, "derived"


# ------------------------------------------------------------------------------------------- batch


def run_baselines(
    dataset_dir: str | Path,
    layout: str,
    plan_file: str | Path,
    out_dir: str | Path,
    split: str = "test",
    methods: str | Sequence[str] = DEFAULT_METHODS,
    la_from: str | Path | None = None,
    csv: str | None = None,
) -> dict[str, list[dict]]:
    """Run the baselines on a split of a planned dataset; return each method's report rows.

    Writes ``<out_dir>/<method>/<scan>/la.nii.gz`` (the LA whose wall was used) and ``scar.nii.gz``
    on the scan's grid, and ``<out_dir>/<method>/report.csv|json`` with a row per scan of
    :func:`bundle.quantification.burden.quantify` values. ``la_from`` names a prediction folder
    (:mod:`bundle.data.predictions` format) whose LA replaces the dataset's labels. Each scan is read
    once for all methods; a scan that cannot be read (or lacks its prediction) gets a ``failed``
    row in every report, a method that fails on one scan a ``failed`` row in its own, and the batch
    goes on.

    Raises:
        ValueError: an unknown method, layout or split.
        DatasetError: a missing or malformed plan or dataset.
    """
    names = check_methods(methods)
    plan_file = Path(plan_file)
    records = split_records(load_plan(plan_file), split, dataset_dir, layout, csv)
    out_dir = claim_folder(out_dir, BASELINES_KIND, inputs=[dataset_dir, la_from])
    for name in names:  # refused folders stop the batch before any scan, not scan by scan
        claim_folder(out_dir / name, PREDICTION_KIND)
    rows: dict[str, list[dict]] = {name: [] for name in names}
    sources: set[str] = set()
    start = time.perf_counter()
    for i, record in enumerate(records, 1):
        scan = str(record["scan"])
        try:
            case = load_case(record)
            reference = case.to_image(case.label)  # the image's grid (read_image geometry)
            predicted = None
            if la_from is not None:
                predicted = la_mask(read_prediction(la_from, scan, reference, record["image"]))
            la, pool, wall, source = case_regions(case, predicted)
        except BATCH_ERRORS as err:
            logger.error("baselines scan %d/%d %s failed and is skipped: %s", i, len(records), scan, err)
            for name in names:
                rows[name].append(failed_row(record, err))
                drop_stale(out_dir / name, scan)
            continue
        sources.add(source)
        for name in names:
            try:
                scar = METHODS[name](case.image, pool, wall)
                write_prediction(out_dir / name, scan, la, scar, reference)
                row = {"scan": scan, "image": str(record["image"]), "status": "ok",
                       **quantify(compose_label(la, scar), case)}
            except BATCH_ERRORS as err:
                logger.error("baseline %s on scan %s failed: %s", name, scan, err)
                row = failed_row(record, err)
                drop_stale(out_dir / name, scan)
            rows[name].append(row)
        logger.info("baselines scan %d/%d %s: done (%s wall)", i, len(records), scan, source)
    for name in names:
        meta = {
            "method": name,
            "rule": DESCRIPTIONS[name],
            "intensities": "raw (not z-scored)",
            "pool": "LA cavity (endocardium) voxels",
            "wall": "given cavity/wall where the layout has them, else derived_wall(LA) "
                    f"(LA minus its {WALL_THICKNESS_MM:g} mm axial erosion) with pool = LA minus wall",
            "wall_sources": sorted(sources),
            "la_from": str(la_from) if la_from is not None else None,
            "dataset": str(dataset_dir),
            "layout": layout,
            "plan": str(plan_file),
            "split": split,
            "seconds": round(time.perf_counter() - start, 3),
            "reference": PAPER,
        }
        write_report(rows[name], out_dir / name, meta)
    return rows

