"""int8 graphs: ONNX Runtime static quantisation calibrated on the user's normal references.

Only the weight matmuls of the image tower's blocks (``resblocks``: QKV, attention output, MLP)
are quantised (QDQ format, int8 weights per output channel, uint8 activations). Everything the
map is sensitive to stays fp32: the adapters, the heads, the patch logits (``logit_scale`` = 100
multiplies each rounding error of ``f @ T``), the smoothing and the upsampling. The same QDQ
graph runs in ONNX Runtime and, converted, in OpenVINO (which runs QDQ pairs as int8 kernels).

How close int8 stays to fp32 is measured on the calibration images themselves and reported:
the Pearson correlation of all map pixels and the Spearman correlation of the image scores.

Calibration memory: ONNX Runtime's calibrator runs its session with the memory pattern on, which
plans one arena block from the first run's allocations and takes it, on top of them, from the
second run on; at ViT-L / 518 px that was 14 GB for one slice and 22 GB for two. Where
``quantize_static`` takes a ranges file (``calibration_cache_path``, onnxruntime >= 1.28) the
ranges are recorded here instead, one slice per run in a session without the memory pattern, so
calibration needs the memory of one slice whatever their number; the ranges are the same MinMax
ranges (each run's are merged by min and max). Older onnxruntime calibrates the usual way.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aaclip_med.export.deps import require
from aaclip_med.files import staging_folder
from aaclip_med.model.graph import INPUT_NAME

__all__ = ["quantize_onnx", "weight_bits", "calibration_ranges", "quantisation_parameters", "takes_ranges_file", "agreement",
           "run_onnx"]

logger = logging.getLogger(__name__)

_QUANTISED_SCOPE = "/resblocks"  # node-name part of the image tower's blocks in the traced graph


def _weight_matmuls(onnx_path: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes of the transformer blocks that multiply by a stored weight."""
    onnx = require("onnx", "int8 quantisation")
    model = onnx.load(str(onnx_path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type in ("MatMul", "Gemm") and _QUANTISED_SCOPE in node.name
            and any(name in weights for name in node.input[1:2])]


class _Images:
    """ONNX Runtime's calibration reader: one image at a time (bounded activation memory)."""

    def __init__(self, images: np.ndarray) -> None:
        self._iter = iter(images[i : i + 1] for i in range(len(images)))

    def get_next(self):
        batch = next(self._iter, None)
        return None if batch is None else {INPUT_NAME: batch}


def takes_ranges_file() -> bool:
    """Whether this onnxruntime's ``quantize_static`` reads ranges from a file (>= 1.28), which
    slice-by-slice calibration needs."""
    quantization = require("onnxruntime.quantization", "int8 quantisation")
    return "calibration_cache_path" in inspect.signature(quantization.quantize_static).parameters


def quantisation_parameters(path: Path) -> dict[str, np.ndarray]:
    """The scales and zero points of a QDQ graph, by initializer name (two graphs with equal ones
    quantise alike)."""
    onnx = require("onnx", "int8 quantisation")
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer
            if "scale" in init.name or "zero_point" in init.name}


def calibration_ranges(fp32_path: Path, images: np.ndarray, work: Path):
    """MinMax ranges of the tensors around the graph's MatMul/Gemm nodes over ``images``, one slice per run.

    The session runs without the memory pattern (module docstring), so its peak is that of one
    slice. Each run's ranges are merged into the running ones by the calibrator (min of minima,
    max of maxima): the ranges ONNX Runtime's one-pass calibration computes.

    Returns:
        onnxruntime's ``TensorsData``.
    """
    ort = require("onnxruntime", "int8 quantisation")
    quantization = require("onnxruntime.quantization", "int8 quantisation")
    augmented = work / "calibration.onnx"
    calibrator = quantization.create_calibrator(Path(fp32_path), ["MatMul", "Gemm"], augmented_model_path=str(augmented),
                                                calibrate_method=quantization.CalibrationMethod.MinMax)
    calibrator.infer_session = None  # drop the session it made (memory pattern on) before making ours
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # as the calibrator's own
    options.enable_mem_pattern = False
    calibrator.infer_session = ort.InferenceSession(str(augmented), options, providers=["CPUExecutionProvider"])
    for index in range(len(images)):
        calibrator.collect_data(_Images(images[index : index + 1]))  # computes this slice's ranges and merges them
    ranges = calibrator.compute_data()
    del calibrator
    augmented.unlink(missing_ok=True)
    return ranges


def weight_bits(reduce_range: bool) -> int:
    """Bits of the int8 graph's weights: 7 with ``reduce_range`` (for CPUs without int8 dot products), else 8."""
    return 7 if reduce_range else 8


def quantize_onnx(fp32_path: Path, int8_path: Path, images: np.ndarray, *, slice_by_slice: bool | None = None,
                  reduce_range: bool | None = None) -> bool:
    """Write ``int8_path``: the fp32 graph with its block matmuls quantised, calibrated on ``images``.

    Args:
        fp32_path: the fp32 ONNX graph.
        int8_path: where the QDQ graph goes.
        images: (N, 3, S, S) float32 preprocessed normal references (N >= 1).
        slice_by_slice: record the ranges one slice per run (:func:`calibration_ranges`) or let
            ``quantize_static`` calibrate in one pass; None: slice by slice where onnxruntime
            takes a ranges file (>= 1.28). Both give the same graph; only the memory differs.
        reduce_range: quantise the weights to 7 bits. On an x86 CPU without int8 dot products
            (no VNNI/AMX-INT8) ONNX Runtime's and OpenVINO's uint8 x int8 kernels sum pairs of
            products in int16 (``vpmaddubsw``), which saturates with 8-bit weights and moves the
            map; 7-bit weights cannot saturate. None: 7 bits where this CPU lacks int8 dot products
            (:func:`aaclip_med.precision.cpu_has_int8_dot`), 8 elsewhere.

    Returns:
        whether the weights were reduced to 7 bits (what the card records).

    Raises:
        ValueError: ``slice_by_slice=True`` with an onnxruntime that takes no ranges file.
    """
    quantization = require("onnxruntime.quantization", "int8 quantisation")
    nodes = _weight_matmuls(fp32_path)
    if not nodes:
        raise ValueError(f"{fp32_path}: found no transformer matmuls to quantise")
    if slice_by_slice is None:
        slice_by_slice = takes_ranges_file()
        if not slice_by_slice:
            logger.info("int8: onnxruntime < 1.28 calibrates in one pass; its memory grows from the second slice "
                        "(docs/export.md)")
    elif slice_by_slice and not takes_ranges_file():
        raise ValueError("slice-by-slice calibration needs onnxruntime >= 1.28 (quantize_static's ranges file)")
    if reduce_range is None:
        from aaclip_med.precision import cpu_has_int8_dot

        reduce_range = not cpu_has_int8_dot()
    images = np.asarray(images, dtype=np.float32)
    logger.info("int8: quantising %d matmuls (%d-bit weights), calibrated on %d image(s)", len(nodes),
                weight_bits(reduce_range), len(images))
    # op_types_to_quantize: the calibration graph then records ranges only around the matmuls that are
    # quantised, not around every tensor (calibrating ViT-L at 518 px: peak RSS 19 GB -> 14 GB)
    settings = dict(quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                    activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                    nodes_to_quantize=nodes, op_types_to_quantize=["MatMul", "Gemm"], reduce_range=reduce_range,
                    calibrate_method=quantization.CalibrationMethod.MinMax)
    if not slice_by_slice:
        quantization.quantize_static(str(fp32_path), str(int8_path), _Images(images), **settings)
        return reduce_range
    from onnxruntime.quantization.calibrate import save_tensors_data

    logger.info("int8: calibration ranges recorded slice by slice (%d slice(s), memory of one)", len(images))
    with staging_folder(Path(int8_path).parent, "calibration") as work:  # a killed run's is removed on resume
        ranges_file = work / "ranges.json"
        save_tensors_data(calibration_ranges(Path(fp32_path), images, work), ranges_file)
        quantization.quantize_static(str(fp32_path), str(int8_path), None, calibration_cache_path=str(ranges_file),
                                     **settings)
    return reduce_range


def run_onnx(path: Path, images: np.ndarray, batch: int = 4) -> list[np.ndarray]:
    """All outputs of an ONNX graph on ``images`` with ONNX Runtime, batch by batch, concatenated."""
    ort = require("onnxruntime", "running an ONNX graph")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    parts = [session.run(None, {INPUT_NAME: images[i : i + batch]}) for i in range(0, len(images), batch)]
    return [np.concatenate(column) for column in zip(*parts)]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def agreement(reference: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> dict[str, float | None]:
    """Map Pearson (all pixels), score Spearman and map max abs difference of ``test`` against ``reference``.

    Both are graph outputs in the order (anomaly_map, image_score, ...). A correlation that is
    undefined (constant values, fewer than 2 images for Spearman) is None.
    """
    from scipy import stats

    ref_map, test_map = reference[0].ravel().astype(np.float64), test[0].ravel().astype(np.float64)
    pearson = np.corrcoef(ref_map, test_map)[0, 1] if ref_map.std() > 0 and test_map.std() > 0 else math.nan
    spearman = stats.spearmanr(reference[1], test[1]).statistic if len(reference[1]) > 1 else math.nan
    return {"map_pearson": _finite(pearson), "score_spearman": _finite(spearman),
            "map_max_abs_diff": float(np.abs(ref_map - test_map).max()), "images": int(len(reference[1]))}
