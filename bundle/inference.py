"""Segment LA and scar in new scans: slice-wise inference, 3D post-processing, masks on the input's grid.

One scan goes through the same steps as training data (:func:`bundle.preprocessing.preprocess_image`),
after being turned to the plan's orientation so its array axes are the ones the 2D axial network
learnt. The [LA, scar] probabilities are resampled back to the scan's own spacing, thresholded and
post-processed in that (axial) frame (the multi-task LA U-Net paper, Sec. 2.2: closing, largest
connected component, scar inside the LA), turned back to the scan's own axis order and written with
exactly the input's geometry.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import Inferer, SliceInferer

from bundle.errors import DatasetError
from bundle.io import geometry_differences, image_suffix, orientation_code, read_image, turn_array
from bundle.layouts import read_dataset, safe_name
from bundle.postprocess import postprocess
from bundle.predictions import drop_stale, quantify, run_batch, write_prediction, write_report
from bundle.preprocessing import preprocess_image, resample_in_plane, split_records
from bundle.workflow import load_weights

logger = logging.getLogger(__name__)

SCAN_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
"""Image files a folder of scans may hold (a detached ``.nhdr``/``.mhd`` header counts, not its raw file)."""

DEFAULT_ORIENTATION = "LPS"
"""Orientation assumed when a plan does not record the orientations of its scans (ITK's default)."""

THRESHOLD = 0.5
"""Probability above which a voxel is LA (channel 0) or scar (channel 1)."""


def scan_name(path: str | Path) -> str:
    """A scan id from an image file name: the name without its format suffix (``.nii.gz`` as one)."""
    name = Path(path).name
    return name[: len(name) - len(image_suffix(name))]


def scan_records(
    dataset_dir: str | Path, layout: str | None = None, plan: dict | None = None, split: str | None = None,
    csv: str | None = None,
) -> list[dict]:
    """Scans to segment, as records with ``scan`` and ``image``.

    With ``layout`` None, ``dataset_dir`` is a folder of scans (every NRRD, NIfTI or MetaImage file
    directly in it). With a layout (``datalist``, ``miccai2018``, ``lascarqs2022``) it is a dataset;
    ``split`` (``train``/``validation``/``test`` of ``plan``) keeps that split only.

    Raises:
        DatasetError: the folder is missing or holds no scans; a split is asked without a layout.
    """
    root = Path(dataset_dir)
    if layout is not None:
        if split is not None:
            if plan is None:
                raise ValueError("a split needs the plan that defines it")
            return split_records(plan, split, root, layout, csv)
        return read_dataset(root, layout, csv)
    if split is not None:
        raise DatasetError(root, f"a split ({split!r}) needs a dataset layout; a folder of scans has no split")
    if not root.is_dir():
        raise DatasetError(root, "folder of scans not found")
    files = sorted(p for p in root.iterdir()
                   if p.is_file() and not p.name.startswith(".") and image_suffix(p) in SCAN_SUFFIXES)
    if not files:
        raise DatasetError(root, f"no scans in the folder (looked for {', '.join(SCAN_SUFFIXES)})")
    records = [{"scan": scan_name(p), "image": str(p)} for p in files]
    for record in records:
        try:
            safe_name(record["scan"])
        except ValueError as err:
            raise DatasetError(record["image"], f"rename it: {err}") from None
    twice = sorted(n for n, k in Counter(r["scan"] for r in records).items() if k > 1)
    if twice:
        raise DatasetError(root, f"scan names appear in two formats, rename one: {twice[:5]}")
    return records


def plan_orientation(plan: Mapping) -> str:
    """The orientation most of the plan's scans have (the frame its networks learnt), e.g. ``"LPS"``."""
    seen = plan.get("fingerprint", {}).get("summary", {}).get("orientations") or {}
    return max(seen, key=seen.get) if seen else DEFAULT_ORIENTATION


def load_model(model_file: str | Path, network_def: torch.nn.Module | None = None,
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """The trained generator in eval mode: a TorchScript ``.ts`` file, or a ``.pt`` state dict loaded
    into ``network_def``.

    Raises:
        DatasetError: the file is missing, or it does not fit ``network_def``.
    """
    path = Path(model_file)
    if not path.is_file():
        raise DatasetError(path, "model file not found (train first, or set model_file)")
    if path.suffix == ".ts":
        try:
            model = torch.jit.load(str(path), map_location=device)
        except RuntimeError as err:
            raise DatasetError(path, f"not a TorchScript model: {str(err).splitlines()[0]}") from None
    else:
        if network_def is None:
            raise ValueError(f"{path}: a state dict needs the network definition (network_def)")
        model = load_weights(network_def, path)
    return model.to(device).eval()


class Segmenter:
    """Segment one scan with a trained [LA, scar] network, returning masks on the scan's own grid.

    Args:
        network: the generator (logits, two channels).
        plan: the plan it was trained with (spacing, normalisation, orientation).
        inferer: how whole volumes are run; default slice by slice along z, one whole slice at a time.
        device: where the network runs.
        closing_radius_mm: in-plane radius of the LA's morphological closing (0: none).
        batch_size: slices per forward pass of the default inferer.
    """

    def __init__(
        self, network: torch.nn.Module | Callable, plan: Mapping, inferer: Inferer | None = None,
        device: str | torch.device = "cpu", closing_radius_mm: float = 0.0, batch_size: int = 8,
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device) if isinstance(network, torch.nn.Module) else network
        self.plan = dict(plan)
        self.inferer = inferer or SliceInferer(roi_size=(-1, -1), spatial_dim=0, sw_batch_size=batch_size,
                                               progress=False)
        self.closing_radius_mm = float(closing_radius_mm)
        self.orientation = plan_orientation(self.plan)

    def closing_radius(self, spacing: Sequence[float]) -> int:
        """The closing radius in voxels on a grid of ``spacing`` (x, y, z) mm."""
        return round(self.closing_radius_mm / (0.5 * (spacing[0] + spacing[1])))

    @torch.no_grad()
    def probabilities(self, image: sitk.Image) -> np.ndarray:
        """[LA, scar] probabilities (2, z, y, x) of ``image`` in the plan's orientation, on its own spacing."""
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError("the image has non-finite intensities (NaN or inf)")
        spacing = image.GetSpacing()
        prepared, plan_spacing = preprocess_image(array, spacing, self.plan)
        x = torch.as_tensor(prepared)[None, None].to(self.device)
        probs = torch.sigmoid(self.inferer(x, self.network))[0].float().cpu().numpy()
        if tuple(plan_spacing) != tuple(spacing):
            size_xy = (array.shape[2], array.shape[1])
            probs = np.stack([resample_in_plane(p, plan_spacing, spacing[:2], sitk.sitkLinear, size_xy) for p in probs])
        return probs

    def segment(self, image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (2, z, y, x) float32, label map (z, y, x) 0/1/2)`` on ``image``'s own grid."""
        original = orientation_code(image)
        turned = image if original == self.orientation else sitk.DICOMOrient(image, self.orientation)
        probs = self.probabilities(turned)
        binary = torch.as_tensor(probs > THRESHOLD, dtype=torch.float32)
        mask = postprocess(binary, self.closing_radius(turned.GetSpacing())).numpy() > 0
        label = mask[0].astype(np.uint8) + mask[1].astype(np.uint8)
        if turned is not image:
            label = self._turn_back(label, turned, image, original)
            probs = np.stack([self._turn_back(p, turned, image, original) for p in probs])
        return probs.astype(np.float32), label

    @staticmethod
    def _turn_back(array: np.ndarray, turned: sitk.Image, image: sitk.Image, orientation: str) -> np.ndarray:
        """An array on ``turned``'s grid re-expressed on ``image``'s grid (axes permuted/flipped only)."""
        back = turn_array(array, turned, orientation)
        diffs = geometry_differences(image, back)
        if diffs:  # DICOMOrient only permutes and flips axes, so this would be a bug, not bad input
            raise RuntimeError(f"re-orientation did not restore the scan's grid: {'; '.join(diffs)}")
        return sitk.GetArrayFromImage(back)


def segment_scans(
    records: Sequence[Mapping], segmenter: Segmenter, output_dir: str | Path, save_probabilities: bool = False,
    meta: Mapping | None = None,
) -> list[dict]:
    """Segment each record's ``image`` into ``<output_dir>/<scan>/`` and write the scar report there.

    A scan that cannot be read or segmented is reported (``status`` failed, with the reason) and
    skipped; the others are written. Returns the report rows.
    """

    def process(record: Mapping) -> dict:
        image = read_image(record["image"])
        probs, label = segmenter.segment(image)
        write_prediction(output_dir, record["scan"], label > 0, label == 2, image,
                         probs if save_probabilities else None)
        return quantify(label, image)

    meta = {"orientation": segmenter.orientation, "threshold": THRESHOLD,
            "closing_radius_mm": segmenter.closing_radius_mm, **(meta or {})}
    rows = run_batch(records, process, what="inference")
    failed = [r["scan"] for r in rows if r["status"] == "failed"]
    for scan in failed:
        drop_stale(output_dir, scan)
    write_report(rows, output_dir, meta)
    logger.info("segmented %d of %d scans into %s%s", len(rows) - len(failed), len(rows), output_dir,
                f"; failed: {failed}" if failed else "")
    return rows


class BatchSegmenter:
    """Segments every record of ``dataset`` into ``output_dir`` with its report (the inference config's
    ``evaluator``: ``run()`` does the work; see :func:`segment_scans`)."""

    def __init__(self, dataset: Sequence[Mapping], segmenter: Segmenter, output_dir: str | Path,
                 save_probabilities: bool = False, meta: Mapping | None = None) -> None:
        self.dataset = list(dataset)
        self.segmenter = segmenter
        self.output_dir = Path(output_dir)
        self.save_probabilities = save_probabilities
        self.meta = dict(meta or {})

    def run(self) -> list[dict]:
        """Segment the dataset; raises after writing the report when not a single scan could be segmented."""
        rows = segment_scans(self.dataset, self.segmenter, self.output_dir, self.save_probabilities, self.meta)
        if rows and all(r["status"] == "failed" for r in rows):
            raise RuntimeError(f"no scan could be segmented (first error: {rows[0]['error']}); see "
                               f"{self.output_dir / 'report.csv'}")
        return rows
