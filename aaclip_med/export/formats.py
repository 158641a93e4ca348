"""Writers of one :class:`~aaclip_med.model.graph.AnomalyGraph` per format (the ``writer`` and
``from_onnx`` functions of :data:`~aaclip_med.export.registry.FORMATS`).

All formats are traced from the same module with the same example input, with a dynamic batch:

- ``torchscript``: ``torch.jit.trace`` -> ``model.ts`` (runs with torch alone);
- ``onnx``: the TorchScript-based ONNX exporter -> ``model.onnx`` (ONNX Runtime, OpenVINO, Triton);
- ``openvino``: the ONNX graph converted by OpenVINO -> ``model.xml`` + ``model.bin``, weights kept
  in fp32 (OpenVINO's default would halve them to fp16, which moves maps by ~1e-2).

PyTorch's fused multi-head-attention kernel has no ONNX form and is switched off while tracing
(the plain attention it replaces computes the same numbers).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from aaclip_med.export.deps import require
from aaclip_med.export.registry import DEFAULT_OPSET, export_format, load_function
from aaclip_med.model.graph import INPUT_NAME, LEVEL_MAPS_NAME, OUTPUT_NAMES, AnomalyGraph

__all__ = ["output_names", "example_input", "write_graph", "write_torchscript", "write_onnx", "convert_onnx_to_openvino"]

logger = logging.getLogger(__name__)



def output_names(graph: AnomalyGraph) -> list[str]:
    return [*OUTPUT_NAMES, LEVEL_MAPS_NAME] if graph.level_maps else list(OUTPUT_NAMES)


def example_input(graph: AnomalyGraph, batch: int = 1) -> torch.Tensor:
    """A (batch, 3, S, S) input on the graph's device (values do not matter for tracing)."""
    device = graph.anchors.device
    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, 3, graph.image_size, graph.image_size, generator=generator).to(device)


@contextlib.contextmanager
def _traceable() -> Iterator[None]:
    """No fused MHA kernel (no ONNX form), no gradients, and no tracer chatter about Python ints."""
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice (torch >= 2.10)
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)


def write_torchscript(graph: AnomalyGraph, path: Path, opset: int) -> None:
    """``torch.jit.trace`` of the graph (``opset`` unused)."""
    with _traceable():
        traced = torch.jit.trace(graph, example_input(graph), check_trace=False)
    torch.jit.save(traced, str(path))


def write_onnx(graph: AnomalyGraph, path: Path, opset: int) -> None:
    """The TorchScript-based ONNX export, batch dynamic."""
    require("onnx", "ONNX export")
    names = output_names(graph)
    dynamic = {name: {0: "batch"} for name in (INPUT_NAME, *names)}
    with _traceable():
        torch.onnx.export(graph, (example_input(graph),), str(path), dynamo=False, input_names=[INPUT_NAME],
                          output_names=names, dynamic_axes=dynamic, opset_version=opset)


def convert_onnx_to_openvino(onnx_path: Path, path: Path) -> None:
    """OpenVINO IR (``path`` .xml + .bin) of an ONNX file, weights kept as they are (fp32 or int8)."""
    ov = require("openvino", "OpenVINO export")
    ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)


def write_graph(graph: AnomalyGraph, folder: str | Path, fmt: str, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``graph`` in format ``fmt`` into ``folder``; returns the model file's path.

    A format without a writer of its own is written as ONNX and converted (its ``from_onnx``).
    """
    spec = export_format(fmt)
    for module in spec.needs:
        require(module, f"{fmt} export")
    path = Path(folder) / spec.file
    logger.info("exporting %s graph to %s", fmt, path)
    if spec.writer is not None:
        load_function(spec.writer)(graph.eval(), path, opset)
        return path
    onnx_path = path.with_name(f"{path.stem}.fp32.onnx")
    write_onnx(graph.eval(), onnx_path, opset)
    try:
        load_function(spec.from_onnx)(onnx_path, path)
    finally:
        onnx_path.unlink(missing_ok=True)
    return path
