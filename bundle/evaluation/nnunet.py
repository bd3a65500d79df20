"""nnU-Net v2 beside the bundle, on the same data and the same folds: how every method of this field is compared.

:func:`export_dataset` writes a dataset and its plan's split as nnU-Net v2 expects them (``nnUNet_raw`` and
``nnUNet_preprocessed`` folders under one output folder):

- ``nnUNet_raw/Dataset<NNN>_<name>/imagesTr/<scan>_0000.nii.gz`` and ``labelsTr/<scan>.nii.gz`` for the plan's
  training and validation scans, ``imagesTs/<scan>_0000.nii.gz`` (and ``labelsTs/``) for its test split; the labels
  are the bundle's label map (0 background, 1 LA, 2 scar) on each scan's own grid, so nnU-Net learns what the bundle
  learns and both are scored alike; ``dataset.json`` (channel ``LGE``: nnU-Net's z-score);
- ``nnUNet_preprocessed/Dataset<NNN>_<name>/splits_final.json``: the plan's cross-validation folds (by patient),
  which nnU-Net's ``nnUNetv2_train <id> 3d_fullres <fold>`` reads instead of making its own.

:func:`import_predictions` reads nnU-Net's predicted label maps of the test split (``nnUNetv2_predict -i imagesTs
-o <folder>``) back into a bundle prediction folder (``<scan>/la.nii.gz``, ``scar.nii.gz`` on the scan's grid) that
``jasgan-compare`` scores beside JAS-GAN with the same metrics and paired tests. nnU-Net itself stays optional: the
bundle writes and reads its files; ``pip install nnunetv2`` to train it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from bundle.atomic import atomic_write_text
from bundle.batch import run_batch
from bundle.data.io import check_same_geometry, read_image, write_image
from bundle.data.labels import LABEL_NAMES
from bundle.data.layouts import load_case
from bundle.data.predictions import PREDICTION_KIND, write_prediction, write_report
from bundle.errors import DatasetError
from bundle.ownership import claim_folder
from bundle.planning.split import split_scans

logger = logging.getLogger(__name__)

NNUNET_EXPORT_KIND = "nnU-Net dataset"
"""The kind of folder (:mod:`bundle.ownership`) an export is claimed as."""

CHANNEL = "LGE"
"""The one input channel's name in ``dataset.json`` (any name but ``CT``: nnU-Net z-scores it per image)."""

FILE_ENDING = ".nii.gz"


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset<NNN>_<name>`` as nnU-Net v2 names a dataset (id 1-999, name of letters, digits, ``_`` and ``-``).

    Raises:
        ValueError: an id outside 1-999 or a name nnU-Net cannot take.
    """
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise ValueError(f"nnU-Net dataset id must be an integer from 1 to 999, got {dataset_id!r}")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)):
        raise ValueError(f"nnU-Net dataset name must be letters, digits, '_' or '-', got {name!r}")
    return f"Dataset{dataset_id:03d}_{name}"


def nnunet_splits(plan: Mapping) -> list[dict[str, list[str]]]:
    """The plan's cross-validation folds as nnU-Net's ``splits_final.json``: ``[{"train": [...], "val": [...]}]``.

    Raises:
        ValueError: the plan has no folds (too few patients).
    """
    folds = plan["split"].get("folds") or []
    if not folds:
        raise ValueError("the plan has no cross-validation folds (too few patients) to give nnU-Net")
    return [{"train": split_scans(plan, "train", k), "val": split_scans(plan, "validation", k)}
            for k in range(len(folds))]


def dataset_json(n_training: int, name: str) -> dict:
    """nnU-Net v2's ``dataset.json`` for the bundle's label map."""
    return {
        "name": name,
        "description": "LGE MRI, left atrium and atrial scar; labels: the JAS-GAN bundle's label map (LA = cavity + "
                       "wall, scar inside it), exported with its plan's split",
        "channel_names": {"0": CHANNEL},
        "labels": {name_: value for value, name_ in sorted(LABEL_NAMES.items())},
        "numTraining": int(n_training),
        "file_ending": FILE_ENDING,
    }


def export_dataset(
    records: Sequence[Mapping], plan: Mapping, out: str | Path, dataset_id: int, name: str,
    inputs: Sequence[str | Path | None] = (),
) -> Path:
    """Write ``records`` (the dataset's, every scan the plan splits) as nnU-Net v2's dataset ``dataset_id``
    with the plan's folds into ``out`` (claimed: absent, empty or an export the bundle wrote; never inside
    ``inputs``). Returns the raw dataset folder. A scan that cannot be read stops the export with its error
    (an nnU-Net dataset missing a case would be trained on other data than the bundle's).
    """
    folder = dataset_folder_name(dataset_id, name)
    splits = nnunet_splits(plan)
    by_scan = {r["scan"]: r for r in records}
    training = split_scans(plan, "train") + split_scans(plan, "validation")
    test = split_scans(plan, "test")
    missing = [s for s in training + test if s not in by_scan]
    if missing:
        raise DatasetError(out, f"scans of the plan are not in the dataset: {missing[:5]}")
    out = claim_folder(out, NNUNET_EXPORT_KIND, inputs=inputs)
    raw = out / "nnUNet_raw" / folder
    for scans, images, labels in ((training, "imagesTr", "labelsTr"), (test, "imagesTs", "labelsTs")):
        for i, scan in enumerate(scans, 1):
            case = load_case(dict(by_scan[scan]))  # the scan as stored (its voxel type), its label map on its grid
            write_image(read_image(by_scan[scan]["image"]), raw / images / f"{scan}_0000{FILE_ENDING}")
            write_image(case.label.astype(np.uint8), raw / labels / f"{scan}{FILE_ENDING}", case)
            logger.info("nnU-Net export %s %d/%d: %s", images, i, len(scans), scan)
    atomic_write_text(raw / "dataset.json", json.dumps(dataset_json(len(training), name), indent=2) + "\n")
    preprocessed = out / "nnUNet_preprocessed" / folder
    preprocessed.mkdir(parents=True, exist_ok=True)
    atomic_write_text(preprocessed / "splits_final.json", json.dumps(splits, indent=2) + "\n")
    return raw


def import_predictions(
    nnunet_dir: str | Path, records: Sequence[Mapping], out: str | Path,
    inputs: Sequence[str | Path | None] = (),
) -> list[dict]:
    """nnU-Net's predicted label maps ``<nnunet_dir>/<scan>.nii.gz`` (0/1/2, on each scan's grid) as a bundle
    prediction folder ``out`` for ``records`` (e.g. the plan's test split). A scan whose prediction is missing, on
    another grid or not 0/1/2 is a failed row of ``out/report.csv``; the others are written. Returns the rows.
    """
    nnunet_dir = Path(nnunet_dir)
    if not nnunet_dir.is_dir():
        raise DatasetError(nnunet_dir, "nnU-Net prediction folder not found")
    out = claim_folder(out, PREDICTION_KIND, inputs=[*inputs, nnunet_dir])

    def process(record: Mapping) -> dict:
        scan = record["scan"]
        path = nnunet_dir / f"{scan}{FILE_ENDING}"
        if not path.is_file():
            raise DatasetError(path, "nnU-Net's prediction of this scan is missing")
        reference = read_image(record["image"])
        predicted = read_image(path)
        check_same_geometry(reference, predicted, record["image"], path)
        label = sitk.GetArrayFromImage(predicted)
        unknown = sorted(set(np.unique(label).tolist()) - set(LABEL_NAMES))
        if unknown:
            raise DatasetError(path, f"label values {unknown[:5]} are not the bundle's {sorted(LABEL_NAMES)}")
        write_prediction(out, scan, label > 0, label == 2, reference)
        return {"image": str(record["image"])}

    rows = run_batch(records, process, what="nnU-Net import")
    write_report(rows, out, {"method": "nnU-Net v2", "predictions": str(nnunet_dir)})
    return rows
