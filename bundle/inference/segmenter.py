"""Segment LA and scar in new whole scans: find the LA, segment its region, masks on the input's grid.

One scan goes through the same steps as training data (:func:`bundle.preprocessing.image.preprocess_image`),
after being turned to the plan's orientation so its array axes are the ones the networks learnt. Stage 1
(:mod:`bundle.inference.localizer`) finds the LA's region on a coarse copy (the most probable plausible LA, by a
wider search when none is plausible at first); stage 2 segments only that region's slices and pixels, grown where
its LA reaches the region's side (:class:`bundle.inference.two_stage.TwoStageInferer`); outside it everything is
background. The [LA, scar] probabilities are resampled back to the scan's own spacing, thresholded and
post-processed in that (axial) frame (the multi-task LA U-Net paper, Sec. 2.2: closing, largest connected
component, scar inside the LA), turned back to the scan's own axis order and written with exactly the input's
geometry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from monai.inferers import Inferer

from bundle.batch import run_batch
from bundle.data.io import geometry_differences, orientation_code, turn_array
from bundle.data.layouts import plan_scar_labels
from bundle.data.predictions import PREDICTION_KIND, drop_stale, write_prediction, write_report
from bundle.inference.dicom_seg import SEG_FILE, write_dicom_seg
from bundle.inference.localizer import CROP, NO_LA, OK, SEARCHED, WIDENED, Localizer, Location
from bundle.inference.postprocess import postprocess_box
from bundle.inference.scans import read_scan
from bundle.inference.two_stage import MAX_ROI_GROWTHS, TwoStageInferer
from bundle.ownership import claim_folder
from bundle.preprocessing.image import preprocess_image, resample_box_in_plane
from bundle.preprocessing.roi import Roi
from bundle.quantification.burden import quantify
from bundle.quantification.qc import QcRules, borders
from bundle.quantification.quality import adversarial_confidence
from bundle.quantification.surface_report import SURFACE_META, surface_outputs

logger = logging.getLogger(__name__)


DEFAULT_ORIENTATION = "LPS"
"""Orientation assumed when a plan does not record the orientations of its scans (ITK's default)."""

THRESHOLD = 0.5
"""Probability above which a voxel is LA (channel 0) or scar (channel 1)."""


STAGE1_COLUMN = {OK: "found", WIDENED: "widened", SEARCHED: "searched", CROP: "crop", NO_LA: "none"}
"""The report's ``stage1`` value of each stage-1 status (:mod:`bundle.inference.localizer`)."""


def plan_orientation(plan: Mapping) -> str:
    """The orientation most of the plan's scans have (the frame its networks learnt), e.g. ``"LPS"``."""
    seen = plan.get("fingerprint", {}).get("summary", {}).get("orientations") or {}
    return max(seen, key=seen.get) if seen else DEFAULT_ORIENTATION


@dataclass
class Segmentation:
    """One scan segmented: masks and probabilities on the scan's own grid, and what stage 1 found.

    ``status`` is ``ok`` (``stage1`` tells whether the LA was found, ``found``, found only by the wider search or
    in a further guess, ``widened``, found by stage 2's search after stage 1 missed it, ``searched``, or the scan is
    a ``crop``) or ``no_la`` (no plausible LA, not even by stage 2's search, ``stage1`` ``none``:
    ``label`` is empty and ``detail`` says what was found and why it was rejected). ``roi`` is the region stage 2
    segmented (grown where the LA reached its side), in the scan's own voxel indices (x, y, z; ``start``
    inclusive, ``stop`` exclusive) and in world millimetres (``min_mm``/``max_mm``, the scan's physical space).
    ``removed_ml`` is the thresholded LA the post-processing dropped (outside the largest component); ``qc_score``
    the joint discriminator's mean confidence in the LA (:mod:`bundle.quantification.quality`; NaN without a
    discriminator).
    """

    probabilities: np.ndarray
    label: np.ndarray
    status: str
    stage1: str
    detail: str
    roi: dict | None
    removed_ml: float = 0.0
    qc_score: float = float("nan")


class Segmenter:
    """Segment one whole scan with both stages, returning masks on the scan's own grid.

    Args:
        network: stage 2, the generator (logits, two channels [LA, scar]).
        plan: the plan both stages were trained with (spacing, normalisation, orientation, localiser, ROI).
        localizer: stage 1; None segments every scan whole (a model trained on crops, or crops).
        inferer: how stage 2 runs on the ROI; default slice by slice along z, each ROI slice whole.
        device: where the networks run.
        closing_radius_mm: in-plane radius of the LA's morphological closing (0: none).
        batch_size: slices per forward pass of the default inferer (and of the discriminator).
        discriminator: T's confidence map (:func:`bundle.networks.weights.load_discriminator`) for ``qc_score``; None: none.
        roi_growths: how many times at most the ROI grows where stage 2's LA reaches its side (0: never).
        scan_search: whether stage 2 searches the whole field of view when stage 1 missed the LA
            (:meth:`~bundle.inference.two_stage.TwoStageInferer.search_scan`).
        neighbour_mm: the model's 2.5D input (each slice with the slices this many mm below and above; None: 2D),
            as it was trained (``neighbour_mm`` of configs/train.yaml).
        rotations_deg: stage 2's test-time augmentation, the mean over the slices turned by these in-plane angles
            (:class:`~bundle.inference.two_stage.TwoStageInferer`); None: one pass.

    A plan without scar labels (``scar_labels`` ``none``: the model's scar head was never trained) gives no scar.
    """

    def __init__(
        self, network: torch.nn.Module | Callable, plan: Mapping, localizer: Localizer | None = None,
        inferer: Inferer | None = None, device: str | torch.device = "cpu", closing_radius_mm: float = 0.0,
        batch_size: int = 8, discriminator: torch.nn.Module | None = None, roi_growths: int = MAX_ROI_GROWTHS,
        neighbour_mm: float | None = None, scan_search: bool = True, rotations_deg: Sequence[float] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.network = network.to(self.device) if isinstance(network, torch.nn.Module) else network
        self.discriminator = discriminator.to(self.device) if discriminator is not None else None
        self.batch_size = int(batch_size)
        self.plan = dict(plan)
        self.segments_scar = plan_scar_labels(self.plan) != "none"
        self.stages = TwoStageInferer(localizer, inferer, batch_size, roi_growths,
                                      context=self.plan["decisions"]["patch_size"]["value"], neighbour_mm=neighbour_mm,
                                      scan_search=scan_search, rotations_deg=rotations_deg)
        self.closing_radius_mm = float(closing_radius_mm)
        self.orientation = plan_orientation(self.plan)
        self.timings: dict[str, float] = {}
        """Seconds of each step of the latest :meth:`segment` (for benchmarks and logs)."""

    def _lap(self, step: str, start: float) -> float:
        now = time.perf_counter()
        self.timings[step] = self.timings.get(step, 0.0) + now - start
        return now

    def closing_radius(self, spacing: Sequence[float]) -> int:
        """The closing radius in voxels on a grid of ``spacing`` (x, y, z) mm."""
        return round(self.closing_radius_mm / (0.5 * (spacing[0] + spacing[1])))

    @torch.no_grad()
    def probabilities(self, image: sitk.Image) -> tuple[np.ndarray, Location, tuple[int, ...], float]:
        """[LA, scar] probabilities (2, z, y, x) of ``image`` (in the plan's orientation) on its own spacing, stage
        1's answer (with the ROI stage 2 finally segmented), the shape of the preprocessed grid its ROI refers to,
        and the ``qc_score`` (NaN without a discriminator)."""
        start = time.perf_counter()
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError("the image has non-finite intensities (NaN or inf)")
        spacing = image.GetSpacing()
        prepared, plan_spacing = preprocess_image(array, spacing, self.plan)
        x = torch.as_tensor(prepared)[None, None].to(self.device)
        start = self._lap("preprocess", start)
        location = self.stages.locate(x, plan_spacing)
        start = self._lap("stage1", start)
        probs = np.zeros((2, *prepared.shape), np.float32)
        qc_score = float("nan")
        location, logits = self.stages.segment(x, self.network, location, plan_spacing)
        if location.roi is not None:
            roi_probs = torch.sigmoid(logits[0].float())
            if not self.segments_scar:
                roi_probs[1] = 0.0
            probs[(slice(None), *location.roi.slices)] = roi_probs.cpu().numpy()
        start = self._lap("stage2", start)  # with stage 2's checks and its search where stage 1 missed the LA
        if location.roi is not None and self.discriminator is not None:
            seen = self.stages.network_input(x, location.roi, plan_spacing)[0]
            qc_score = adversarial_confidence(self.discriminator, seen, roi_probs, self.batch_size)
            start = self._lap("quality", start)
        if tuple(plan_spacing) != tuple(spacing) and location.roi is not None:
            # zero outside the ROI: only the ROI's slices and surroundings are resampled back to the scan's grid,
            # into one zero array whose pages elsewhere are never touched
            back = np.zeros((2, *array.shape), np.float32)
            for p, b in zip(probs, back):
                resample_box_in_plane(p, location.roi.slices, plan_spacing, spacing[:2], array.shape, out=b)
            probs = back
        elif tuple(plan_spacing) != tuple(spacing):
            probs = np.zeros((2, *array.shape), np.float32)
        self._lap("resample", start)
        return probs, location, prepared.shape, qc_score

    def segment(self, image: sitk.Image) -> Segmentation:
        """Both stages on ``image``; masks and probabilities on its own grid."""
        self.timings = {}
        start = time.perf_counter()
        original = orientation_code(image)
        turned = image if original == self.orientation else sitk.DICOMOrient(image, self.orientation)
        self._lap("orient", start)
        probs, location, grid_shape, qc_score = self.probabilities(turned)
        start = time.perf_counter()
        binary = torch.as_tensor(probs > THRESHOLD, dtype=torch.float32)
        mask = postprocess_box(binary, self.closing_radius(turned.GetSpacing())).numpy() > 0
        label = mask[0].astype(np.uint8) + mask[1].astype(np.uint8)
        removed_ml = float((binary[0].numpy() > 0).sum() - (binary[0].numpy() > 0)[mask[0]].sum()) * float(
            np.prod(turned.GetSpacing())) / 1000.0
        start = self._lap("postprocess", start)
        roi = None
        if location.roi is not None:
            factors = [n / m for n, m in zip(label.shape, grid_shape)]
            roi = _roi_on_scan(location.roi.scaled(factors, label.shape), turned, image)
        if turned is not image:
            label = self._turn_back(label, turned, image, original)
            probs = np.stack([self._turn_back(p, turned, image, original) for p in probs])
        self._lap("orient", start)
        status = NO_LA if location.status == NO_LA else "ok"
        stage1 = STAGE1_COLUMN[location.status]
        return Segmentation(probs.astype(np.float32, copy=False), label, status, stage1, location.detail, roi,
                            removed_ml, qc_score)

    @staticmethod
    def _turn_back(array: np.ndarray, turned: sitk.Image, image: sitk.Image, orientation: str) -> np.ndarray:
        """An array on ``turned``'s grid re-expressed on ``image``'s grid (axes permuted/flipped only)."""
        back = turn_array(array, turned, orientation)
        diffs = geometry_differences(image, back)
        if diffs:  # DICOMOrient only permutes and flips axes, so this would be a bug, not bad input
            raise RuntimeError(f"re-orientation did not restore the scan's grid: {'; '.join(diffs)}")
        return sitk.GetArrayFromImage(back)


def _roi_on_scan(roi: Roi, turned: sitk.Image, image: sitk.Image) -> dict:
    """A box on ``turned``'s grid (the scan in the plan's orientation) as voxel ranges (x, y, z) of the scan's own
    grid and its world corners in mm."""
    world = roi.world(turned)
    corners = [image.TransformPhysicalPointToContinuousIndex((x, y, z))
               for x in (world["min"][0], world["max"][0]) for y in (world["min"][1], world["max"][1])
               for z in (world["min"][2], world["max"][2])]
    lo, hi = np.min(corners, axis=0), np.max(corners, axis=0)
    size = image.GetSize()
    start = [int(max(0, round(v + 0.5))) for v in lo]
    stop = [int(min(n, round(v + 0.5))) for v, n in zip(hi, size)]
    return {"start": start, "stop": stop, "min_mm": world["min"], "max_mm": world["max"]}


def _roi_columns(roi: dict | None) -> dict:
    """Report columns of a scan's ROI (empty when stage 1 found none)."""
    if roi is None:
        return {"roi_start": None, "roi_stop": None, "roi_min_mm": None, "roi_max_mm": None}
    return {"roi_start": roi["start"], "roi_stop": roi["stop"], "roi_min_mm": roi["min_mm"], "roi_max_mm": roi["max_mm"]}


def segment_scans(
    records: Sequence[Mapping], segmenter: Segmenter, output_dir: str | Path, save_probabilities: bool = False,
    meta: Mapping | None = None, save_dicom_seg: bool = False, save_surface: bool = True,
    qc_rules: QcRules | None = None, input_dir: str | Path | None = None,
) -> list[dict]:
    """Segment each record's ``image`` into ``<output_dir>/<scan>/`` and write the scar report there.

    ``output_dir`` is claimed first (:mod:`bundle.ownership`: absent, empty or the bundle's prediction folder, and
    not inside ``input_dir``, the folder the scans come from, unless the bundle wrote it), so a refused folder stops
    the batch before any scan is segmented.

    A scan that cannot be read or segmented is reported (``status`` failed, with the reason) and skipped; a scan
    in which stage 1 finds no LA gets ``status`` no_la with the reason and no masks; the others are written with
    their ROI (``roi_start``/``roi_stop``: voxel ranges x, y, z of the scan; ``roi_min_mm``/``roi_max_mm``: world
    corners). With ``save_dicom_seg``, a scan read from a DICOM series also gets ``seg.dcm``, a DICOM SEG
    referencing that series (:mod:`bundle.inference.dicom_seg`). With ``save_surface`` each scan gets its surface scar map
    (:mod:`bundle.quantification.surface_report`: ``surface.vtk``, ``surface.ply``, ``surface.png``, ``surface_scar_percent``). Every
    row gets the quality check ``qc`` (``qc_rules``, :mod:`bundle.quantification.qc`) and ``qc_score`` when the segmenter has a
    discriminator. Returns the report rows.
    """
    rules = qc_rules or QcRules()
    claim_folder(output_dir, PREDICTION_KIND, inputs=[input_dir])

    def process(record: Mapping) -> dict:
        image = read_scan(record)
        result = segmenter.segment(image)
        row = {"status": result.status, "stage1": result.stage1, **_roi_columns(result.roi)}
        if result.status == NO_LA:
            drop_stale(output_dir, record["scan"])
            logger.warning("%s: %s", record["scan"], result.detail)
            return {**row, "error": result.detail}
        row.update(quantify(result.label, image), removed_ml=result.removed_ml, qc_score=result.qc_score)
        extra = None
        if save_surface and (result.label > 0).any():  # no LA (stage 2 found none in the ROI): no surface, qc says so
            columns, extra = surface_outputs(result.label, image, record["scan"], row["scar_percent"],
                                             sitk.GetArrayFromImage(image))
            row.update(columns)
        row["qc"] = rules.check({**row, "borders": borders(result.label > 0, image, result.roi, rules.border_min_mm2)})
        write_prediction(output_dir, record["scan"], result.label > 0, result.label == 2, image,
                         result.probabilities if save_probabilities else None, extra)
        if save_dicom_seg and record.get("dicom") is not None:
            write_dicom_seg(record["dicom"], result.label > 0, result.label == 2,
                            Path(output_dir) / record["scan"] / SEG_FILE)
        return row

    meta = {"orientation": segmenter.orientation, "threshold": THRESHOLD,
            "closing_radius_mm": segmenter.closing_radius_mm,
            "tta_rotations_deg": list(segmenter.stages.rotations_deg), "qc_rules": rules.describe(),
            "surface": SURFACE_META if save_surface else None, **(meta or {})}
    rows = run_batch(records, process, what="inference")
    for row in rows:  # a scan without masks needs a look too: qc says why
        row.setdefault("qc", f"not segmented ({row['status']}): see error")
    for record, row in zip(records, rows):  # DICOM input: the report names the series
        if "series_uid" in record:
            row.update(series=record.get("series", ""), series_uid=record["series_uid"])
    failed = [r["scan"] for r in rows if r["status"] == "failed"]
    no_la = [r["scan"] for r in rows if r["status"] == NO_LA]
    for scan in failed:
        drop_stale(output_dir, scan)
    write_report(rows, output_dir, meta)
    logger.info("segmented %d of %d scans into %s%s%s", len(rows) - len(failed) - len(no_la), len(rows), output_dir,
                f"; no LA found: {no_la}" if no_la else "", f"; failed: {failed}" if failed else "")
    return rows


class BatchSegmenter:
    """Segments every record of ``dataset`` into ``output_dir`` with its report (the inference config's
    ``evaluator``: ``run()`` does the work; see :func:`segment_scans`; ``input_dir`` is the folder the scans come
    from, which the output never lies in)."""

    def __init__(self, dataset: Sequence[Mapping], segmenter: Segmenter, output_dir: str | Path,
                 save_probabilities: bool = False, meta: Mapping | None = None, save_dicom_seg: bool = False,
                 save_surface: bool = True, qc_rules: QcRules | None = None,
                 input_dir: str | Path | None = None) -> None:
        self.dataset = list(dataset)
        self.segmenter = segmenter
        self.output_dir = Path(output_dir)
        self.save_probabilities = save_probabilities
        self.meta = dict(meta or {})
        if not segmenter.segments_scar:
            self.meta["scar"] = "not segmented: the plan has no scar labels (scar_labels none), the model no scar"
        self.save_dicom_seg = save_dicom_seg
        self.save_surface = save_surface
        self.qc_rules = qc_rules
        self.input_dir = input_dir

    def run(self) -> list[dict]:
        """Segment the dataset; raises after writing the report when not a single scan could be segmented."""
        rows = segment_scans(self.dataset, self.segmenter, self.output_dir, self.save_probabilities, self.meta,
                             self.save_dicom_seg, self.save_surface, self.qc_rules, self.input_dir)
        if rows and all(r["status"] == "failed" for r in rows):
            raise RuntimeError(f"no scan could be segmented (first error: {rows[0]['error']}); see "
                               f"{self.output_dir / 'report.csv'}")
        return rows
