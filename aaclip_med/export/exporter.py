"""``export_model``: an AA-CLIP network + one class -> an exported graph folder (model file + card).

The files are written in a temporary folder inside the output folder and moved into place when
complete, the card last, so an interrupted export leaves no folder that looks finished. What the
output folder may hold beforehand: :mod:`aaclip_med.export.folder`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aaclip_med.data.modality import detect_modality
from aaclip_med.data.slicing import SliceVolume
from aaclip_med.errors import ParameterError
from aaclip_med.export.card import CARD_NAME, build_card, file_records, write_card
from aaclip_med.export.deps import require, runtime_versions
from aaclip_med.export.folder import check_export_folder, earlier_export_files
from aaclip_med.export.formats import output_names, write_graph, write_onnx
from aaclip_med.export.quantize import agreement, quantize_onnx, run_onnx, weight_bits
from aaclip_med.export.registry import DEFAULT_OPSET, check_export, export_format, load_function
from aaclip_med.files import move_into, staging_folder
from aaclip_med.inference.cohort_job import load_case
from aaclip_med.inference.run_info import run_record
from aaclip_med.inference.sources import discover_cases
from aaclip_med.inference.volume import resolve_case_modality
from aaclip_med.model.graph import AnomalyGraph
from aaclip_med.presets import AUTO, get_modality

__all__ = ["export_model", "reference_images", "MIN_CALIBRATION_SLICES"]

logger = logging.getLogger(__name__)

MAX_CALIBRATION_SLICES = 32  # enough for MinMax ranges; each one costs a forward pass in fp32 and in int8
MIN_CALIBRATION_SLICES = 2  # fewer: the score agreement with fp32 cannot be measured (a Spearman of one score)


def reference_images(predictor, sources: Sequence[str | os.PathLike], limit: int = MAX_CALIBRATION_SLICES,
                     modality: str | None = None) -> np.ndarray:
    """(N, 3, S, S) preprocessed slices of normal references, loaded and cut as inference does.

    At most ``limit`` slices, spread evenly over each volume (slices next to each other are alike).
    """
    cases = discover_cases(sources)
    per_case = max(1, limit // max(1, len(cases)))
    images = []
    wanted = modality or predictor.modality
    for case in cases:
        image = load_case(case)
        name = resolve_case_modality(image, wanted).name
        _check_calibration_modality(case.path, detect_modality(image), wanted)
        slices = SliceVolume()(image)
        for index in np.unique(np.linspace(0, len(slices) - 1, min(per_case, len(slices))).round().astype(int)):
            images.append(predictor.preprocess(slices[index], name).numpy())
    if not images:
        raise ParameterError("calibration_data", ", ".join(map(str, sources)), "no image found")
    if len(images) < MIN_CALIBRATION_SLICES:
        logger.warning("--calibration-data %s: %d slice calibrates the int8 ranges; the agreement of the image "
                       "scores with fp32 needs at least %d and is not measured. Give more normal references",
                       ", ".join(map(str, sources)), len(images), MIN_CALIBRATION_SLICES)
    return np.stack(images[:limit]).astype(np.float32)


def _check_calibration_modality(path, detected, wanted: str) -> None:
    """Refuse a calibration source whose DICOM Modality names another kind of image than the graph's
    preset: its ranges would be those of other intensities (other modalities' guesses are only logged)."""
    if wanted == AUTO or not detected.reason.startswith("DICOM Modality"):
        return
    if get_modality(detected.name)["kind"] != get_modality(wanted)["kind"]:
        raise ParameterError("calibration_data", path, f"{detected.reason} ({detected.name}), but the graph is "
                             f"exported for {{modality}} {wanted}; calibrate int8 on normal references of the graph's "
                             "modality")


def _int8(graph: AnomalyGraph, work: Path, fmt: str, images: np.ndarray, opset: int) -> dict:
    """Write the int8 graph of ``fmt`` into ``work``: the QDQ ONNX graph, converted by the format's
    ``from_onnx`` when it is not ONNX; returns its agreement with fp32 on ``images``."""
    spec = export_format(fmt)
    for module in spec.needs:
        require(module, f"int8 {fmt} export")
    fp32_path, int8_path = work / "fp32.onnx", work / "int8.onnx"
    write_onnx(graph, fp32_path, opset)
    reduced = quantize_onnx(fp32_path, int8_path, images)
    report = agreement(run_onnx(fp32_path, images), run_onnx(int8_path, images))
    fp32_path.unlink()
    if spec.from_onnx is None:
        int8_path.rename(work / spec.file)
    else:
        load_function(spec.from_onnx)(int8_path, work / spec.file)
        int8_path.unlink()
    bits = weight_bits(reduced)
    return report | {"method": f"onnxruntime static QDQ: {bits}-bit weights per channel, uint8 activations (MinMax)",
                     "weight_bits": bits}


def _move_into_place(work: Path, out: Path) -> None:
    """Move the finished files of ``work`` into ``out``, the card last (it marks completion), and remove
    what an earlier export in ``out`` wrote that this one does not (its card first)."""
    written = {item.name for item in work.iterdir()}
    stale = earlier_export_files(out) - written
    (out / CARD_NAME).unlink(missing_ok=True)  # an earlier export's card must not describe the new files
    move_into(sorted(work.iterdir(), key=lambda p: p.name == CARD_NAME), out)
    for name in stale:
        (out / name).unlink(missing_ok=True)


def export_model(model, out_dir: str | os.PathLike, fmt: str, *, class_name: str, description: str, domain: str,
                 preset: str | None = None, weights: str | None = None, level_maps: bool = False,
                 precision: str = "fp32", calibration_images: np.ndarray | None = None,
                 calibration_source: str | None = None, opset: int = DEFAULT_OPSET) -> dict:
    """Export ``model`` for one class to ``out_dir`` (model file + ``card.json``); returns the card.

    Args:
        model: an :class:`~aaclip_med.model.AAClip` with its adapters loaded.
        out_dir: the folder to write: new, empty, or holding an earlier export, which is replaced
            (:func:`~aaclip_med.export.folder.check_export_folder`).
        fmt: one of :data:`~aaclip_med.export.registry.FORMATS`.
        class_name, description, domain, preset: what the graph scores and how its inputs are made.
        weights: the adapters file (recorded with its sha256).
        level_maps: also output the four level maps.
        precision: ``fp32``, or ``int8`` (onnx/openvino; needs ``calibration_images``).
        calibration_images: (N, 3, S, S) preprocessed normal references for int8.
        calibration_source: where they came from (recorded in the card).
        opset: ONNX opset (onnx/openvino).
    """
    spec = check_export(fmt, precision, calibrated=calibration_images is not None and len(calibration_images) > 0)
    out = Path(out_dir)
    check_export_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    with torch.no_grad():
        graph = AnomalyGraph(model, description, domain, level_maps=level_maps).eval()
    with staging_folder(out, "export") as work:
        if precision == "int8":
            int8 = _int8(graph, work, fmt, calibration_images, opset) | {"calibration_data": calibration_source}
        else:
            int8 = None
            write_graph(graph, work, fmt, opset)
        card = build_card(run_record(model, weights, {}), fmt=fmt, file=spec.file, precision=precision,
                          class_name=class_name, description=description, domain=graph.domain, preset=preset,
                          levels=list(model.config.levels), logit_scale=model.config.logit_scale,
                          outputs=output_names(graph), opset=opset if spec.opset else None,
                          versions=runtime_versions(), files=file_records(work.iterdir()), int8=int8)
        write_card(card, work)
        _move_into_place(work, out)
    logger.info("exported %s %s graph of %r to %s", precision, fmt, class_name, out)
    return card
