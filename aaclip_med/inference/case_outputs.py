"""Write everything of one case: overlays, PNGs, DICOM objects, its score rows.

File layout in the output folder (``<case>`` = case ID from the input's file/folder name):

- volumes and 2D DICOM/NIfTI: ``<case>_anomaly.nii.gz`` (float32 map on the source grid) and, with a
  threshold, ``<case>_anomaly_mask.nii.gz`` (uint8);
- plain images: ``<case>_heatmap.png`` and ``<case>_blend.png`` at the original size;
- DICOM sources with ``dicom=True``: ``<case>_seg.dcm`` (binary SEG; needs a threshold) and
  ``<case>_pmap.dcm`` (float Parametric Map of raw values or normal-reference probabilities,
  ``options.pmap_values``);
- ``<case>_scores.json``: case score, the preset used (and why), and per-slice scores; a case
  where no slice reaches ``min_foreground`` has a null score and its ``reason``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from monai.data import MetaTensor

from aaclip_med.data.loading import INTENSITY_MAX
from aaclip_med.files import write_json_atomic
from aaclip_med.inference.calibration import ClassCalibration
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.inference.run_info import sha256_file
from aaclip_med.inference.sources import Case
from aaclip_med.inference.volume import CaseResult
from aaclip_med.inference.writers import (
    write_blend_png,
    write_heatmap_png,
    write_nifti_mask,
    write_nifti_overlay,
)
from aaclip_med.inference.writers.png import image_to_rgb8

__all__ = ["write_case_outputs", "score_rows"]

logger = logging.getLogger(__name__)


def score_rows(case: Case, result: CaseResult, calibration: ClassCalibration | None, class_name: str) -> tuple[dict, list[dict]]:
    """(case row, slice rows) with raw scores and, when calibrated, z-scores and normal percentiles.

    ``foreground``/``scored`` say which slices count in the case score (see ``volume.py``).
    """
    slices = []
    for s in result.slices:
        row = {"case_id": case.case_id, "slice_index": s.slice_index, "image_score": s.image_score,
               "global_score": s.global_score, "map_max": s.map_max, "foreground": round(s.foreground, 4),
               "scored": s.scored}
        if calibration is not None:
            row |= {"calibrated_z": calibration.z(s.image_score), "normal_percentile": calibration.percentile(s.image_score)}
        slices.append(row)
    best = result.best_slice
    case_row = {"case_id": case.case_id, "source": str(case.path), "class_name": class_name,
                "modality": result.modality, "modality_reason": result.modality_reason, "domain": result.domain,
                "n_slices": len(result.slices), "case_score": result.case_score,
                "max_slice": None if best is None else best.slice_index, "reason": result.unscored}
    if calibration is not None:
        score = result.case_score
        case_row |= {"calibrated_z": None if score is None else calibration.z(score),
                     "normal_percentile": None if score is None else calibration.percentile(score)}
    return case_row, slices


def _write_png(case: Case, image: MetaTensor, score_map: np.ndarray, out_dir: Path) -> list[Path]:
    rgb = image_to_rgb8(image, image.meta.get(INTENSITY_MAX))
    return [write_heatmap_png(score_map, out_dir / f"{case.case_id}_heatmap.png"),
            write_blend_png(rgb, score_map, out_dir / f"{case.case_id}_blend.png")]


def _write_dicom(case: Case, score_map: MetaTensor, options: InferenceOptions, out_dir: Path,
                 calibration: ClassCalibration | None) -> list[Path]:
    from aaclip_med.inference.writers.dicom_pmap import write_parametric_map
    from aaclip_med.inference.writers.dicom_seg import write_segmentation

    files = list(case.files) or [case.path]
    volume = np.asarray(score_map[0], dtype=np.float32)  # (rows, columns[, slices])
    weights = sha256_file(options.weights)  # remembered: hashed once per run, not per case
    written = [write_parametric_map(volume, files, out_dir / f"{case.case_id}_pmap.dcm",
                                    values=options.pmap_values or "raw", calibration=calibration,
                                    weights_sha256=weights)]
    if options.threshold is None:
        logger.warning("%s: no --threshold, so no DICOM SEG (the Parametric Map is written)", case.case_id)
    else:
        mask = volume >= options.threshold
        if not mask.any():
            logger.warning("%s: no voxel reaches --threshold %g (map maximum %.4g): its DICOM SEG is empty",
                           case.case_id, options.threshold, float(volume.max()))
        written.append(write_segmentation(mask, files, out_dir / f"{case.case_id}_seg.dcm",
                                          threshold=options.threshold, weights_sha256=weights))
    return written


def write_case_outputs(
    case: Case, image: MetaTensor, result: CaseResult, out_dir: Path, options: InferenceOptions, rows: tuple[dict, list[dict]],
    calibration: ClassCalibration | None = None,
) -> list[Path]:
    """Write the case's files (see module docstring; ``options.threshold``/``dicom`` decide which); returns their paths.

    ``calibration`` (the case's class calibration) turns the Parametric Map into probabilities
    when ``options.pmap_values`` is "probability".
    """
    score_map = result.anomaly_map
    if options.dicom and case.kind not in ("dicom", "dicom_series"):  # SEG/PM objects reference their source's UIDs
        logger.warning("%s: --dicom-out writes DICOM objects for DICOM sources only; this %s input gets none",
                       case.case_id, "NIfTI" if case.kind == "nifti" else "image")
    if case.kind == "image":
        written = _write_png(case, image, np.asarray(score_map[0]), out_dir)
    else:
        source = case.path if case.kind == "nifti" else None  # overlays keep a NIfTI source's codes and units
        overlay = out_dir / f"{case.case_id}_anomaly.nii.gz"
        written = [write_nifti_overlay(score_map, score_map.affine, overlay, source=source)]
        if options.threshold is not None:
            path = out_dir / f"{case.case_id}_anomaly_mask.nii.gz"
            written.append(write_nifti_mask(score_map, score_map.affine, options.threshold, path, source=source))
        if options.dicom and case.kind in ("dicom", "dicom_series"):
            written += _write_dicom(case, score_map, options, out_dir, calibration)
    case_row, slice_rows = rows
    written.append(write_json_atomic(out_dir / f"{case.case_id}_scores.json", {"case": case_row, "slices": slice_rows}))
    return written
