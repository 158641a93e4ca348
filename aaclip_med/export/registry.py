"""The export formats and the engines that run them, as data: the one list the CLI, the exporter and
:class:`~aaclip_med.export.deployed.DeployedModel` read.

Each format names its model file, the function that writes it (or converts the ONNX graph into it),
whether it has an int8 form, the engines that run it and the packages it needs; each engine names
the function that runs a model file and the packages it needs. Functions are named as
``"module:function"`` and imported only when used, so this module is standard library only:
``aaclip-med export --help`` and ``infer --engine`` choices read it without importing torch.

A new format is one :class:`ExportFormat` entry here plus its writer in
:mod:`aaclip_med.export.formats` (and, for a new runtime, one :class:`Engine` entry plus its runner in
:mod:`aaclip_med.export.engines`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ExportFormat",
    "Engine",
    "FORMATS",
    "ENGINES",
    "TORCH_ENGINE",
    "EXPORT_PRECISIONS",
    "DEFAULT_OPSET",
    "export_format",
    "engine",
    "formats_of",
    "check_export",
    "load_function",
]

EXPORT_PRECISIONS = ("fp32", "int8")
DEFAULT_OPSET = 17
TORCH_ENGINE = "torch"  # also what runs the network itself when no exported graph is given


@dataclass(frozen=True)
class ExportFormat:
    """One ``--format`` of ``aaclip-med export``.

    Attributes:
        name: the ``--format`` value, recorded in the card.
        file: the model file in the export folder (what the card's ``file`` names).
        writer: ``"module:function(graph, path, opset)"`` that writes the fp32 graph; None: the
            ONNX graph is written and converted by ``from_onnx``.
        from_onnx: ``"module:function(onnx_path, path)"`` converting an ONNX file into this
            format (how its int8 form is made from the quantised ONNX graph); None for ONNX itself.
        int8: whether ``--precision int8`` is offered (a QDQ ONNX graph, converted by ``from_onnx``).
        opset: whether the format is made through ONNX (the card records the opset).
        engines: the engines that run it, the first being the one to suggest.
        needs: modules needed to write it (keys of :data:`aaclip_med.packages.DISTRIBUTIONS`).
    """

    name: str
    file: str
    writer: str | None
    engines: tuple[str, ...]
    from_onnx: str | None = None
    int8: bool = False
    opset: bool = True
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Engine:
    """One ``--engine`` of ``aaclip-med infer`` that runs an exported model file.

    Attributes:
        name: the ``--engine`` value, recorded in run.json.
        runner: ``"module:function(path, threads) -> run(images) -> outputs"``.
        needs: modules the runner imports (keys of :data:`aaclip_med.packages.DISTRIBUTIONS`).
        device: where it runs (the only device offered).
    """

    name: str
    runner: str
    needs: tuple[str, ...] = ()
    device: str = "cpu"



_WRITERS = "aaclip_med.export.formats"
_RUNNERS = "aaclip_med.export.engines"

FORMATS: dict[str, ExportFormat] = {
    "torchscript": ExportFormat("torchscript", "model.ts", f"{_WRITERS}:write_torchscript", engines=("torch",),
                                opset=False),
    "onnx": ExportFormat("onnx", "model.onnx", f"{_WRITERS}:write_onnx", engines=("onnxruntime", "openvino"),
                         int8=True, needs=("onnx",)),
    "openvino": ExportFormat("openvino", "model.xml", None, engines=("openvino",),
                             from_onnx=f"{_WRITERS}:convert_onnx_to_openvino", int8=True, needs=("onnx", "openvino")),
}

ENGINES: dict[str, Engine] = {
    "torch": Engine("torch", f"{_RUNNERS}:torch_runner"),
    "onnxruntime": Engine("onnxruntime", f"{_RUNNERS}:onnxruntime_runner", needs=("onnxruntime",)),
    "openvino": Engine("openvino", f"{_RUNNERS}:openvino_runner", needs=("openvino",)),
}


def _choose(kind: str, name: str, table: dict):
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of {list(table)}")
    return table[name]


def export_format(name: str) -> ExportFormat:
    """The format called ``name`` (ValueError listing the formats when there is none)."""
    return _choose("export format", name, FORMATS)


def engine(name: str) -> Engine:
    """The engine called ``name`` (ValueError listing the engines when there is none)."""
    return _choose("engine", name, ENGINES)


def formats_of(engine_name: str) -> list[str]:
    """The formats ``engine_name`` runs, in the order of :data:`FORMATS`."""
    return [f.name for f in FORMATS.values() if engine_name in f.engines]


def check_export(fmt: str, precision: str, calibrated: bool) -> ExportFormat:
    """The format ``fmt`` if it can be exported in ``precision`` (``calibrated``: normal references are
    given); ValueError naming the choices otherwise. The CLI checks with it before torch is imported,
    the exporter again."""
    spec = export_format(fmt)
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"export precision {precision!r}: choose one of {list(EXPORT_PRECISIONS)}")
    if precision == "int8" and not spec.int8:
        int8 = " or ".join(name for name, entry in FORMATS.items() if entry.int8)
        raise ValueError(f"--precision int8 is for --format {int8}, not {fmt}")
    if precision == "int8" and not calibrated:
        raise ValueError("--precision int8 needs --calibration-data DIR (normal references calibrate the int8 ranges)")
    return spec


def load_function(reference: str) -> Callable:
    """The function a ``"module:function"`` reference names (its module imported now)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)
