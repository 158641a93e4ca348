"""Runners of an exported model file, one per engine (the ``runner`` functions of
:data:`~aaclip_med.export.registry.ENGINES`).

A runner takes the model file and a CPU thread count and returns ``run(images) -> outputs``: the
graph's outputs (numpy arrays, in the card's order) for (B, 3, S, S) float32 images.

- ``torch``: the TorchScript file with ``torch.jit.load``;
- ``onnxruntime``: the ONNX file with ONNX Runtime's CPU provider;
- ``openvino``: the OpenVINO IR (or the ONNX file) on OpenVINO's CPU plugin, in f32 (OpenVINO would
  otherwise run bf16 on CPUs that have it, moving maps by ~1e-2).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from aaclip_med.export.deps import require
from aaclip_med.model.graph import INPUT_NAME

__all__ = ["torch_runner", "onnxruntime_runner", "openvino_runner"]

Runner = Callable[[np.ndarray], list[np.ndarray]]


def torch_runner(path: Path, threads: int) -> Runner:
    with warnings.catch_warnings():  # torch >= 2.10 announces TorchScript's deprecation on every load
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(images: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            return [t.numpy() for t in module(torch.from_numpy(images))]
    return run


def onnxruntime_runner(path: Path, threads: int) -> Runner:
    ort = require("onnxruntime", "--engine onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # no spinning between runs: the workers would take the cores from the loader and torch's threads,
    # which prepare the next slices meanwhile; a run of a ViT graph is long enough not to miss it
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {INPUT_NAME: images})


def openvino_runner(path: Path, threads: int) -> Runner:
    ov = require("openvino", "--engine openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(images: np.ndarray) -> list[np.ndarray]:
        result = request.infer({INPUT_NAME: images})
        return [np.array(result[out]) for out in compiled.outputs]
    return run
