"""The int8 calibration paths on a small ONNX graph, run in a child process of the tests (as _engine_run).

``python -m tests.export._quantize_run WORK`` writes a two-matmul graph whose node names put it in
the quantised scope, then ``WORK/result.json``:

- ``ranges``: the input's MinMax range from :func:`calibration_ranges` over three slices of
  different scales, next to the true min and max of all three;
- ``same_as_one_pass``: whether :func:`quantize_onnx` with the ranges recorded slice by slice
  writes the same quantisation parameters as with ONNX Runtime's one-pass calibration (the path
  of onnxruntime < 1.28), and ``default_same`` / ``default_messages`` the default's graph and
  what it logged (it says which calibration it ran);
- ``differs_without_first``: whether leaving the first slice out changes them (so the comparison
  can tell a calibration that kept only the last slice);
- ``takes_ranges_file``: whether this onnxruntime can calibrate slice by slice (the package's check);
- ``weight_levels``: the largest stored int8 weight magnitude with ``reduce_range`` (7-bit weights)
  and without (8-bit), and ``default_reduced`` what the default chose and returned;
- ``leftovers``: files other than these graphs left in WORK (the calibration graph and the
  ranges file are temporary).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from aaclip_med.export import quantize
from aaclip_med.model.graph import INPUT_NAME

_WRITTEN = {"fp32.onnx", "default.onnx", "sliced.onnx", "one_pass.onnx", "without_first.onnx", "bits7.onnx", "bits8.onnx"}


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _graph(path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(16, 8)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", [INPUT_NAME, "w1"], ["h"], name="/resblocks.0/fc/MatMul"),
             helper.make_node("Relu", ["h"], ["r"], name="/resblocks.0/act/Relu"),
             helper.make_node("MatMul", ["r", "w2"], ["anomaly_map"], name="/resblocks.0/proj/MatMul")]
    graph = helper.make_graph(nodes, "two_matmuls",
                              [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, ["N", 4, 8])],
                              [helper.make_tensor_value_info("anomaly_map", onnx.TensorProto.FLOAT, ["N", 4, 8])],
                              [w1, w2])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _parameters(path: Path) -> dict[str, list[float]]:
    return {name: value.astype(float).ravel().tolist() for name, value in quantize.quantisation_parameters(path).items()}


def _largest_int8_weight(path: Path) -> int:
    model = onnx.load(str(path))
    return max(int(np.abs(numpy_helper.to_array(t).astype(np.int32)).max()) for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.INT8)


def main(work: Path) -> None:
    fp32 = work / "fp32.onnx"
    _graph(fp32)
    rng = np.random.default_rng(1)
    images = np.stack([rng.normal(scale=s, size=(4, 8)) for s in (3.0, 0.5, 1.0)]).astype(np.float32)
    ranges = quantize.calibration_ranges(fp32, images, work)
    low, high = (float(v) for v in np.asarray(ranges[INPUT_NAME].range_value, dtype=float).ravel())
    messages = _Messages()
    logging.getLogger(quantize.__name__).addHandler(messages)
    logging.getLogger(quantize.__name__).setLevel(logging.INFO)
    default_reduced = quantize.quantize_onnx(fp32, work / "default.onnx", images)
    default_messages = list(messages.lines)
    quantize.quantize_onnx(fp32, work / "sliced.onnx", images, slice_by_slice=True)
    quantize.quantize_onnx(fp32, work / "one_pass.onnx", images, slice_by_slice=False)  # as onnxruntime < 1.28
    quantize.quantize_onnx(fp32, work / "without_first.onnx", images[1:], slice_by_slice=False)
    sliced = _parameters(work / "sliced.onnx")
    result = {
        "ranges": [low, high], "true_range": [float(images.min()), float(images.max())],
        "parameters": len(sliced),
        "same_as_one_pass": sliced == _parameters(work / "one_pass.onnx"),
        "default_same": _parameters(work / "default.onnx") == sliced, "default_messages": default_messages,
        "differs_without_first": _parameters(work / "without_first.onnx") != sliced,
        "takes_ranges_file": quantize.takes_ranges_file(),
        "default_reduced": default_reduced,
        "weight_levels": {bits: _largest_int8_weight(work / f"bits{bits}.onnx") for bits in (7, 8)
                          if quantize.quantize_onnx(fp32, work / f"bits{bits}.onnx", images, reduce_range=bits == 7)
                          == (bits == 7)},
        "leftovers": sorted(p.name for p in work.iterdir() if p.name not in _WRITTEN),
    }
    (work / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
