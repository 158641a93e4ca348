"""``export_model``: an AA-CLIP network + one class -> an exported graph folder (model file + card).

The folder is written under a temporary name inside the output folder and moved into place when
complete, so an interrupted export leaves no folder that looks finished.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from aaclip_med.export.card import CARD_NAME, build_card, write_card
from aaclip_med.export.deps import runtime_versions
from aaclip_med.export.formats import (
    DEFAULT_OPSET,
    FORMATS,
    MODEL_FILES,
    convert_onnx_to_openvino,
    output_names,
    write_graph,
)
from aaclip_med.export.quantize import agreement, quantize_onnx, run_onnx
from aaclip_med.files import move_into, staging_folder
from aaclip_med.model.graph import AnomalyGraph

__all__ = ["export_model", "reference_images", "EXPORT_PRECISIONS"]

logger = logging.getLogger(__name__)

EXPORT_PRECISIONS = ("fp32", "int8")
INT8_FORMATS = ("onnx", "openvino")
MAX_CALIBRATION_SLICES = 32  # enough for MinMax ranges; each one costs a forward pass in fp32 and in int8


def reference_images(predictor, sources: Sequence[str | os.PathLike], limit: int = MAX_CALIBRATION_SLICES,
                     modality: str | None = None) -> np.ndarray:
    """(N, 3, S, S) preprocessed slices of normal references, loaded and cut as inference does.

    At most ``limit`` slices, spread evenly over each volume (slices next to each other are alike).
    """
    from aaclip_med.data.slicing import SliceVolume
    from aaclip_med.inference.cohort_job import load_case
    from aaclip_med.inference.sources import discover_cases
    from aaclip_med.inference.volume import resolve_case_modality

    cases = discover_cases(sources)
    per_case = max(1, limit // max(1, len(cases)))
    images = []
    for case in cases:
        image = load_case(case)
        name = resolve_case_modality(image, modality or predictor.modality).name
        slices = SliceVolume()(image)
        for index in np.unique(np.linspace(0, len(slices) - 1, min(per_case, len(slices))).round().astype(int)):
            images.append(predictor.preprocess(slices[index], name).numpy())
    if not images:
        raise ValueError(f"--calibration-data {', '.join(map(str, sources))}: no image found")
    return np.stack(images[:limit]).astype(np.float32)


def _int8(graph: AnomalyGraph, work: Path, fmt: str, images: np.ndarray, opset: int) -> dict:
    """Write the int8 graph of ``fmt`` into ``work``; returns its agreement with fp32 on ``images``."""
    fp32 = write_graph(graph, work, "onnx", opset)
    fp32_path = fp32.rename(work / "fp32.onnx")
    int8_path = work / MODEL_FILES["onnx"]
    quantize_onnx(fp32_path, int8_path, images)
    report = agreement(run_onnx(fp32_path, images), run_onnx(int8_path, images))
    fp32_path.unlink()
    if fmt == "openvino":
        from aaclip_med.export.deps import require

        convert_onnx_to_openvino(require("openvino", "OpenVINO export"), int8_path, work / MODEL_FILES["openvino"])
        int8_path.unlink()
    return report | {"method": "onnxruntime static QDQ: int8 weights per channel, uint8 activations (MinMax)"}


def export_model(model, out_dir: str | os.PathLike, fmt: str, *, class_name: str, description: str, domain: str,
                 preset: str | None = None, weights: str | None = None, level_maps: bool = False,
                 precision: str = "fp32", calibration_images: np.ndarray | None = None,
                 calibration_source: str | None = None, opset: int = DEFAULT_OPSET) -> dict:
    """Export ``model`` for one class to ``out_dir`` (model file + ``card.json``); returns the card.

    Args:
        model: an :class:`~aaclip_med.model.AAClip` with its adapters loaded.
        out_dir: the folder to write (created; files of an earlier export of the same name are replaced).
        fmt: one of :data:`~aaclip_med.export.formats.FORMATS`.
        class_name, description, domain, preset: what the graph scores and how its inputs are made.
        weights: the adapters file (recorded with its sha256).
        level_maps: also output the four level maps.
        precision: ``fp32``, or ``int8`` (onnx/openvino; needs ``calibration_images``).
        calibration_images: (N, 3, S, S) preprocessed normal references for int8.
        calibration_source: where they came from (recorded in the card).
        opset: ONNX opset (onnx/openvino).
    """
    from aaclip_med.inference.run_info import run_record

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"export precision {precision!r}: choose one of {list(EXPORT_PRECISIONS)}")
    if precision == "int8" and fmt not in INT8_FORMATS:
        raise ValueError(f"int8 export is for {list(INT8_FORMATS)}, not {fmt}; use --precision fp32 for {fmt}")
    if precision == "int8" and (calibration_images is None or len(calibration_images) == 0):
        raise ValueError("int8 export needs normal reference images: give --calibration-data DIR")
    out = Path(out_dir)
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
        card = build_card(run_record(model, weights, {}), fmt=fmt, file=MODEL_FILES[fmt], precision=precision,
                          class_name=class_name, description=description, domain=graph.domain, preset=preset,
                          levels=list(model.config.levels), logit_scale=model.config.logit_scale,
                          outputs=output_names(graph), opset=None if fmt == "torchscript" else opset,
                          versions=runtime_versions(), int8=int8)
        write_card(card, work)
        (out / CARD_NAME).unlink(missing_ok=True)  # an earlier export's card must not describe the new files
        move_into(sorted(work.iterdir(), key=lambda p: p.name == CARD_NAME), out)  # the card last: it marks completion
    logger.info("exported %s %s graph of %r to %s", precision, fmt, class_name, out)
    return card
