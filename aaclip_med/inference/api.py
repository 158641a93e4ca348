"""Library entry points for pipelines, the CLI and the bundle: one call per job.

- :func:`run_inference`: files/folders or a manifest -> outputs folder, returns the summary.
- :func:`fit_calibration`: normal reference images -> :class:`Calibration` (see ``calibration.py``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from aaclip_med.data.manifest import read_manifest
from aaclip_med.distributed import DistContext, init_distributed, shutdown_distributed
from aaclip_med.inference.calibration import Calibration, ClassCalibration, PixelStats
from aaclip_med.inference.case_outputs import OutputOptions
from aaclip_med.inference.cohort import CohortSettings, load_case, run_cohort
from aaclip_med.inference.predictions_dir import run_manifest
from aaclip_med.inference.predictor import Predictor
from aaclip_med.inference.run_info import run_record
from aaclip_med.inference.sources import discover_cases
from aaclip_med.inference.volume import predict_case
from aaclip_med.inference.writers import write_json
from aaclip_med.keys import Keys
from aaclip_med.prompts import resolve_description

__all__ = ["run_inference", "fit_calibration", "calibration_from_model"]

logger = logging.getLogger(__name__)


def calibration_from_model(model: nn.Module) -> Calibration | None:
    """The calibration stored in an adapter checkpoint (``extra["calibration"]``), if any."""
    data = getattr(model, "checkpoint_extra", {}).get("calibration")
    return Calibration.from_dict(data, "checkpoint extra") if data else None


def _descriptions(classes: Sequence[str], description: str | None, overrides: Mapping[str, str] | None) -> dict[str, str]:
    if description:
        return {name: description for name in classes}
    return {name: resolve_description(name, overrides) for name in classes}


def run_inference(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model: nn.Module,
    modality: str = "ct",
    domain: str | None = None,
    class_name: str = "scan",
    description: str | None = None,
    descriptions: Mapping[str, str] | None = None,
    manifest: str | os.PathLike | None = None,
    dataset_root: str | os.PathLike | None = None,
    threshold: float | None = None,
    dicom: bool = False,
    calibration: Calibration | None = None,
    precision: str = "fp32",
    batch_size: int = 8,
    workers: int = 0,
    device: str | None = None,
    weights: str | None = None,
) -> dict:
    """Run inference on files/folders (cohort mode) or on a manifest (predictions-directory mode).

    Under ``torchrun`` (WORLD_SIZE > 1) cases are sharded across ranks; outputs equal one process.

    Args:
        inputs: files and folders (ignored when ``manifest`` is given).
        out_dir: the only folder written to.
        model: an AAClip (e.g. from ``load_adapters``); its ``checkpoint_extra`` calibration is
            used when ``calibration`` is None.
        modality, domain: preset and domain (default from the modality).
        class_name, description, descriptions: class of the inputs and its text; a manifest's
            classes are resolved through ``descriptions`` then the shipped registries.
        manifest, dataset_root: manifest mode (see ``predictions_dir.py``).
        threshold: raw map threshold for masks and DICOM SEG.
        dicom: write DICOM SEG / Parametric Map for DICOM sources.
        calibration: normal-reference calibration (see ``calibration.py``).
        precision, batch_size, workers, device: execution settings.
        weights: the adapter file, recorded with its sha256 in run.json.

    Returns:
        The summary {"total", "done", "skipped", "failed", "out_dir"}.
    """
    info = init_distributed(device)
    try:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        predictor = Predictor(model, modality, domain, batch_size, precision, info.device)
        calibration = calibration or calibration_from_model(model)
        settings = {"modality": predictor.modality, "domain": predictor.domain, "precision": predictor.precision,
                    "threshold": threshold, "calibration": calibration.to_dict() if calibration else None,
                    "world_size": info.world_size}
        if manifest is not None:
            summary = _run_manifest(predictor, manifest, dataset_root, out, description, descriptions, info, workers, settings)
        else:
            desc = description or resolve_description(class_name, descriptions)
            cohort = CohortSettings(class_name, desc, OutputOptions(threshold, dicom), calibration, workers)
            summary = run_cohort(predictor, discover_cases(inputs), out, cohort, info)
            settings |= {"class_name": class_name, "description": desc}
        if info.is_main:
            write_json(out / "run.json", run_record(model, weights, settings))
        return summary
    finally:
        shutdown_distributed(info)


def _run_manifest(predictor, manifest, dataset_root, out, description, descriptions, info: DistContext, workers, settings) -> dict:
    manifest = Path(manifest)
    root = Path(dataset_root) if dataset_root else manifest.parent
    records = read_manifest(manifest)
    classes = sorted({str(r[Keys.CLASS_NAME]) for r in records})
    descs = _descriptions(classes, description, descriptions)
    settings |= {"manifest": str(manifest), "dataset_root": str(root), "descriptions": descs}
    return run_manifest(predictor, records, root, out, descs, info, workers)


def fit_calibration(
    predictor: Predictor, normals: Sequence[str | os.PathLike], class_name: str, description: str, seed: int = 0,
) -> ClassCalibration:
    """Fit a class calibration on normal reference images/volumes (every slice counts).

    Args:
        predictor: the predictor (same model, modality and domain as later inference).
        normals: files or folders of normal references (discovered like run inputs).
        class_name: class the references belong to.
        description: its text description.
        seed: seed of the pixel subsample used for the map quantiles.
    """
    rng = np.random.default_rng(seed)
    scores: list[float] = []
    pixels = PixelStats()
    for case in discover_cases(normals):
        result = predict_case(predictor, load_case(case), description)
        scores += [s.image_score for s in result.slices]
        for index in range(result.anomaly_map.shape[-1] if result.anomaly_map.ndim == 4 else 1):
            plane = result.anomaly_map[0, ..., index] if result.anomaly_map.ndim == 4 else result.anomaly_map[0]
            pixels.add(np.asarray(plane), rng)
    logger.info("calibration of %r from %d normal slice(s)", class_name, len(scores))
    return ClassCalibration.fit(class_name, description, predictor.domain, scores, pixels)
