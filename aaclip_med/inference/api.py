"""Library entry points for pipelines, the CLI and the bundle: one call per job.

- :func:`run_inference`: files/folders or a manifest -> outputs folder, returns the summary; its
  settings are one :class:`~aaclip_med.inference.options.InferenceOptions` (keyword arguments of
  the same names are accepted too and override it).
- :func:`fit_calibration`: normal reference images -> :class:`ClassCalibration` (see ``calibration.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from aaclip_med.data.manifest import manifest_descriptions, read_manifest
from aaclip_med.distributed import DistContext, init_distributed, shutdown_distributed
from aaclip_med.identity import memory_identity, scoring_identity
from aaclip_med.inference.calibration import (
    Calibration,
    ClassCalibration,
    PixelStats,
    check_calibration,
)
from aaclip_med.inference.cohort_job import CohortJob, ModalityLog, load_case
from aaclip_med.inference.network import fill_options
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.inference.predictions_dir import ManifestJob
from aaclip_med.inference.predictor import Predictor
from aaclip_med.inference.run_info import run_record, sha256_file
from aaclip_med.inference.runner import run_job
from aaclip_med.inference.sources import discover_cases
from aaclip_med.inference.volume import predict_case
from aaclip_med.keys import Keys
from aaclip_med.presets import AUTO
from aaclip_med.prompts import resolve_description

__all__ = ["run_inference", "fit_calibration", "calibration_from_model", "attach_references", "settle_options", "output_settings",
           "InferenceOptions"]

logger = logging.getLogger(__name__)


def calibration_from_model(model: nn.Module) -> Calibration | None:
    """The calibration stored in an adapter checkpoint (``extra["calibration"]``), if any."""
    data = getattr(model, "checkpoint_extra", {}).get("calibration")
    return Calibration.from_dict(data, "checkpoint extra") if data else None


def run_inference(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    model: nn.Module,
    options: InferenceOptions | None = None,
    *,
    manifest: str | os.PathLike | None = None,
    dataset_root: str | os.PathLike | None = None,
    **settings,
) -> dict:
    """Run inference on files/folders (cohort mode) or on a manifest (predictions-directory mode).

    Under ``torchrun`` (WORLD_SIZE > 1) cases are sharded across ranks; outputs equal one process.
    Everything is checked (settings against the model, the output folder's earlier work, the
    calibration) before the first case; see :mod:`aaclip_med.inference.runner` for the run itself.

    Args:
        inputs: files and folders (ignored when ``manifest`` is given).
        out_dir: the only folder written to.
        model: an AAClip (e.g. from ``load_adapters``); its ``checkpoint_extra`` calibration is
            used when the options hold none.
        options: the run's settings (default :class:`InferenceOptions`).
        manifest, dataset_root: manifest mode (see ``predictions_dir.py``); the root defaults to
            the manifest's folder.
        settings: :class:`InferenceOptions` fields by keyword (``modality="mri"``,
            ``threshold=2.5``...), applied over ``options``.

    Returns:
        The summary {"total", "done", "skipped", "failed", "out_dir", "all_failed"}.
    """
    options = InferenceOptions.build(options, **settings)
    options = fill_options(model, options)  # an exported graph: class, preset and domain default to its card's
    options.check_model(model)
    if manifest is None:
        cases = discover_cases(inputs)  # before anything is created: a missing input writes nothing
    info = init_distributed(options.device)
    try:
        out = Path(out_dir)
        predictor = Predictor(model, options.modality, options.domain, options.batch_size, options.precision,
                              info.device, progress=options.progress)
        calibration = options.calibration or calibration_from_model(model)
        if options.dicom and manifest is None:
            options = _with_pmap_values(options, calibration)
        if manifest is not None:
            record = run_record(model, options.weights, _settings(options, predictor, None, info))
            job = _manifest_job(predictor, options, manifest, dataset_root, out, record)
            attach_references(predictor, options, record, job.descriptions)
        else:
            record = run_record(model, options.weights, _settings(options, predictor, calibration, info))
            description = options.description or resolve_description(options.resolved_class, options.descriptions)
            record |= {"class_name": options.resolved_class, "description": description}
            attach_references(predictor, options, record, {options.resolved_class: description})
            calibrate = _calibration_lookup(calibration, record, options)
            job = CohortJob(predictor, cases, out, options, description, calibrate)
        created = not out.exists()
        out.mkdir(parents=True, exist_ok=True)  # only now: every check above writes nothing
        return run_job(job, out, record, info, workers=options.workers, progress=options.progress,
                       force=options.force, created_folder=created)
    finally:
        shutdown_distributed(info)


def settle_options(options: InferenceOptions, model: nn.Module) -> InferenceOptions:
    """``options`` with what every run would decide again decided once, for callers that start many runs
    with them (PACS: one run per series): the reference memory read from its file, and the Parametric
    Map values of DICOM outputs (so the raw-values warning is given once, not per series)."""
    if isinstance(options.references, (str, os.PathLike)):
        from aaclip_med.memory import load_references

        options = options.replace(references=load_references(options.references))
    if options.dicom:
        options = _with_pmap_values(options, options.calibration or calibration_from_model(model))
    return options


def _with_pmap_values(options: InferenceOptions, calibration: Calibration | None) -> InferenceOptions:
    """``options`` with ``pmap_values`` decided (see :meth:`InferenceOptions.resolved_pmap_values`)."""
    values = options.resolved_pmap_values(calibration)
    if options.pmap_values is None and values == "raw":
        logger.warning("no calibration: the DICOM Parametric Maps hold raw map values, which viewers that expect values "
                       "in [0, 1] (OHIF) do not scale, so the overlay may not show; apply a calibration "
                       "(--calibration FILE) to store normal-reference probabilities, or pass --pmap-values raw "
                       "to silence this")
    return options.replace(pmap_values=values)


def _settings(options: InferenceOptions, predictor: Predictor, calibration: Calibration | None, info: DistContext) -> dict:
    return output_settings(options, calibration, predictor.domain, predictor.precision) | {"world_size": info.world_size}


def output_settings(options: InferenceOptions, calibration: Calibration | None, domain: str | None,
                    precision: str) -> dict:
    """The settings a run record holds of :data:`~aaclip_med.identity.OUTPUT_FIELDS` (besides the network and
    the class), written once for inference runs and for PACS runs.

    Args:
        options: the run's options.
        calibration: the calibration applied (None: raw scores).
        domain, precision: as the run resolves them (a predictor's), or as given.
    """
    return {
        "modality": options.modality, "domain": domain, "precision": precision,
        "threshold": options.threshold, "dicom": options.dicom, "pmap_values": options.pmap_values if options.dicom else None,
        "calibration": calibration.to_dict() if calibration else None,
        "slices": dataclasses.asdict(options.slices),
        **references_record(options),
    }


def _references_file(given) -> str | os.PathLike | None:
    """The file of a reference memory option: the path given, or the file a loaded memory was read from."""
    return given if isinstance(given, (str, os.PathLike)) else getattr(given, "source", None)


def references_record(options: InferenceOptions) -> dict:
    """What run.json records of the reference memory: ``references`` ({sha256, weight}: the scores depend on
    both, and calibration compares it) and ``references_path``; nothing without one.

    An approximate search adds ``search`` (its recipe) to ``references``: its maps differ from the exact
    ones, so finished work or a calibration of the other kind is refused by name. The exact searches
    (auto, screen, gemm) differ by float rounding only, as devices do, and record nothing (so records
    written before the approximate search existed still match)."""
    if options.references is None:
        return {}
    path = _references_file(options.references)
    memory = {"sha256": sha256_file(path) if path else None, "weight": options.resolved_reference_weight}
    if options.reference_search == "approximate":
        from aaclip_med.memory.search import APPROXIMATE_RECIPE

        memory["search"] = APPROXIMATE_RECIPE
    return {"references": memory, "references_path": str(path) if path else None}


def attach_references(predictor: Predictor, options: InferenceOptions, record: Mapping,
                      descriptions: Mapping[str, str]) -> None:
    """Give ``predictor`` the reference memory of every class of the run, checked against this run first.

    Raises:
        ValueError: the file was built with another network, preset, domain or slice axis (each
            difference named), or has no references of a class of the run.
    """
    if options.references is None:
        return
    from aaclip_med.memory import ReferenceScorer, check_references, load_references

    given = options.references
    bank = load_references(given) if isinstance(given, (str, os.PathLike)) else given
    source = str(_references_file(given) or "the reference memory")
    identity = memory_identity(record, options.slices.axis)
    fixed = None if options.modality == AUTO else options.modality
    scorers, owners = {}, {}
    for class_name, description in descriptions.items():
        memory = check_references(bank, identity, class_name, fixed, options.domain, source, description=description)
        key = (description, memory.modality)
        if key in owners:
            raise ValueError(f"classes {owners[key]!r} and {class_name!r} share the description {description!r} and "
                             f"the preset {memory.modality!r}: their reference memories cannot be told apart; give "
                             "them distinct descriptions (--descriptions)")
        owners[key] = class_name
        scorers[key] = ReferenceScorer(memory, options.resolved_reference_weight, predictor.device, predictor.precision,
                                       search=options.reference_search)
    predictor.references = scorers
    logger.info("reference memory %s: classes %s, weight %g", source, sorted(descriptions), options.resolved_reference_weight)
    if options.reference_search == "approximate":
        logger.warning("reference search 'approximate': the maps and scores are approximate (a faiss index scores each "
                       "patch against part of the memory; where it misses the nearest normal patch the map is higher "
                       "than the exact search's); see docs/reference-memory.md, or drop --reference-search for the "
                       "exact search")


def _calibration_lookup(calibration: Calibration | None, record: Mapping,
                        options: InferenceOptions) -> Callable[[str, str], ClassCalibration | None]:
    """(modality, domain) -> the checked class calibration; the model and class are checked now."""
    if calibration is None:
        return lambda modality, domain: None
    identity = scoring_identity(record)
    name = options.resolved_class
    fixed = None if options.modality == AUTO else options.modality
    check_calibration(calibration, identity, name, fixed, options.domain, options.allow_calibration_mismatch)
    checked: dict[tuple[str, str], ClassCalibration] = {}

    def lookup(modality: str, domain: str) -> ClassCalibration:
        if (modality, domain) not in checked:
            checked[(modality, domain)] = check_calibration(calibration, identity, name, modality, domain,
                                                            options.allow_calibration_mismatch)
        return checked[(modality, domain)]

    return lookup


def _manifest_job(predictor: Predictor, options: InferenceOptions, manifest, dataset_root, out: Path,
                  record: dict) -> ManifestJob:
    manifest = Path(manifest)
    root = Path(dataset_root) if dataset_root else manifest.parent
    records = read_manifest(manifest)
    classes = sorted({str(r[Keys.CLASS_NAME]) for r in records})
    if options.description:
        descriptions = {name: options.description for name in classes}
    else:
        given = manifest_descriptions(manifest, options.descriptions)
        descriptions = {name: resolve_description(name, given) for name in classes}
    if options.calibration is not None:
        logger.warning("the calibration is not applied to a manifest run: its raw scores are what 'aaclip-med evaluate' reads")
    record |= {"manifest": str(manifest), "manifest_sha256": sha256_file(manifest), "dataset_root": str(root),
               "descriptions": descriptions}
    return ManifestJob(predictor, records, root, out, descriptions, options.modality, options.domain, ModalityLog())


def fit_calibration(
    predictor: Predictor, normals: Sequence[str | os.PathLike], class_name: str, description: str, seed: int = 0,
    modality: str | None = None,
) -> ClassCalibration:
    """Fit a class calibration on normal reference images/volumes (every slice counts).

    Args:
        predictor: the predictor (same model, modality and domain as later inference).
        normals: files or folders of normal references (discovered like run inputs).
        class_name: class the references belong to.
        description: its text description.
        seed: seed of the pixel subsample used for the map quantiles.
        modality: preset or "auto" (default: the predictor's); every reference must get the same preset.

    Raises:
        ValueError: the references got different presets, or there are fewer than 2 slices.
    """
    rng = np.random.default_rng(seed)
    scores: list[float] = []
    pixels = PixelStats()
    presets: dict[str, str] = {}
    for case in discover_cases(normals):
        result = predict_case(predictor, load_case(case), description, modality=modality)
        presets.setdefault(result.modality, case.case_id)
        scores += [s.image_score for s in result.slices]
        for index in range(result.anomaly_map.shape[-1] if result.anomaly_map.ndim == 4 else 1):
            plane = result.anomaly_map[0, ..., index] if result.anomaly_map.ndim == 4 else result.anomaly_map[0]
            pixels.add(np.asarray(plane), rng)
    if len(presets) > 1:
        raise ValueError(f"the normal references got different modality presets {presets} (preset: first case); "
                         "pass --modality to calibrate one kind of image")
    logger.info("calibration of %r from %d normal slice(s)", class_name, len(scores))
    modality_used = next(iter(presets), None)
    domain = result.domain if presets else predictor.domain  # result.domain already honours a fixed one
    return ClassCalibration.fit(class_name, description, domain, scores, pixels, modality_used)
