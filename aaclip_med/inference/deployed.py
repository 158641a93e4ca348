"""Exported graphs as the predictor's network: the same loading, slicing, writers and calibration.

:class:`DeployedModel` reads a folder written by ``aaclip-med export`` (model file + ``card.json``)
and runs its graph with one engine:

- ``torch``: the TorchScript file (``model.ts``) with ``torch.jit.load``;
- ``onnxruntime``: the ONNX file with ONNX Runtime's CPU provider;
- ``openvino``: the OpenVINO IR (or the ONNX file) on OpenVINO's CPU plugin, in f32 (OpenVINO would
  otherwise run bf16 on CPUs that have it, moving maps by ~1e-2).

:class:`~aaclip_med.inference.Predictor` calls it where it calls the fast torch path for an
:class:`~aaclip_med.model.AAClip`, so every entry point (CLI, API, bundle, PACS) runs exported
graphs through one runner. The card is checked against the run (:meth:`DeployedModel.check_options`):
a different class, description, domain, preset, image size or precision is refused by name.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aaclip_med.export.card import CARD_NAME, read_card
from aaclip_med.export.deps import require
from aaclip_med.identity import network_record
from aaclip_med.model.aaclip import Prediction
from aaclip_med.model.graph import INPUT_NAME

__all__ = ["DeployedModel", "ENGINES", "ENGINE_FORMATS"]

logger = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime", "openvino")
ENGINE_FORMATS = {"torch": ("torchscript",), "onnxruntime": ("onnx",), "openvino": ("openvino", "onnx")}
_PRED_OUTPUTS = 4  # anomaly_map, image_score, global_score, map_max (Prediction's fields, in order)


@dataclass(frozen=True)
class DeployedConfig:
    """What the runner reads of a network's config, as the card recorded it."""

    backbone: str
    image_size: int
    pretrained: str | None
    levels: tuple[int, ...]
    logit_scale: float


def _torch_runner(path: Path, threads: int):
    with warnings.catch_warnings():  # torch >= 2.10 announces TorchScript's deprecation on every load
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(images: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            return [t.numpy() for t in module(torch.from_numpy(images))]
    return run


def _onnxruntime_runner(path: Path, threads: int):
    ort = require("onnxruntime", "--engine onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: session.run(None, {INPUT_NAME: images})


def _openvino_runner(path: Path, threads: int):
    ov = require("openvino", "--engine openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(images: np.ndarray) -> list[np.ndarray]:
        result = request.infer({INPUT_NAME: images})
        return [np.array(result[out]) for out in compiled.outputs]
    return run


_RUNNERS = {"torch": _torch_runner, "onnxruntime": _onnxruntime_runner, "openvino": _openvino_runner}


class DeployedModel:
    """An exported AA-CLIP graph of one class, run by ``engine``, in place of the torch network.

    Args:
        folder: a folder written by ``aaclip-med export`` (its ``card.json`` names the model file).
        engine: one of :data:`ENGINES`; it must be able to run the folder's format.
        threads: CPU threads of the engine (default: torch's thread count).

    Raises:
        FileNotFoundError: the folder, its card or its model file is missing.
        ValueError: the engine cannot run the folder's format.
        ImportError: the engine's package is not installed (naming the ``export`` extra).
    """

    deployed = True  # the Predictor runs it as it is (no fast torch path, no text tower)

    def __init__(self, folder: str | os.PathLike, engine: str = "onnxruntime", threads: int | None = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose one of {list(ENGINES)}")
        self.folder = Path(folder)
        self.card = read_card(self.folder)
        self.engine = engine
        fmt = self.card["format"]
        if fmt not in ENGINE_FORMATS[engine]:
            usable = [e for e, formats in ENGINE_FORMATS.items() if fmt in formats]
            raise ValueError(f"--engine {engine} cannot run the {fmt} graph in {self.folder}; use --engine "
                             f"{' or '.join(usable)}, or export with --format {ENGINE_FORMATS[engine][0]}")
        path = self.folder / self.card["file"]
        if not path.is_file():
            raise FileNotFoundError(f"{self.folder / CARD_NAME} names {self.card['file']}, which is not in {self.folder}")
        identity = self.card["identity"]
        self.config = DeployedConfig(identity["backbone"], int(identity["image_size"]), identity.get("pretrained"),
                                     tuple(identity["levels"]), float(identity["logit_scale"]))
        self.precision = self.card["precision"]
        self._run = _RUNNERS[engine](path, threads or torch.get_num_threads())
        logger.info("exported %s %s graph of %r (%s) run by %s", self.precision, fmt, identity["class_name"],
                    identity["domain"], engine)

    @property
    def identity(self) -> dict:
        """The card's identity of the network (backbone, size, weights and their sha256, class, ...)."""
        return dict(self.card["identity"])

    @property
    def recorded_identity(self) -> dict:
        """What run.json records of the network: the card's identity, and which graph ran it how."""
        return network_record(self.card["identity"]) | {
            "engine": {"name": self.engine, "format": self.card["format"]},
            "exported_model": {"folder": str(self.folder)}}

    # the parts of the nn.Module interface the runner uses
    def to(self, device: str | torch.device) -> DeployedModel:
        if torch.device(device).type != "cpu":
            raise ValueError(f"--engine {self.engine} runs on the CPU; drop --device {device}")
        return self

    def eval(self) -> DeployedModel:
        return self

    def _refuse(self, what: str, run_value, card_value) -> None:
        raise ValueError(f"{what} {run_value!r} differs from the exported graph's {card_value!r} "
                         f"({self.folder / CARD_NAME}); export the graph again for it, or drop the option")

    def text_anchors(self, description: str) -> torch.Tensor:
        """The anchors are folded into the graph: only its own description can be asked for (none returned)."""
        if description != self.card["identity"]["description"]:
            self._refuse("class description", description, self.card["identity"]["description"])
        return torch.zeros(0)

    def fill_options(self, options):
        """``options`` with what the run leaves open taken from the card (class, description, preset,
        domain), and the CPU as the device."""
        from aaclip_med.presets import AUTO

        identity = self.card["identity"]
        changes = {}
        if not options.class_name and not options.description:
            changes |= {"class_name": identity["class_name"], "description": identity["description"]}
        if options.modality == AUTO and identity.get("preset") and identity["preset"] != AUTO:
            changes["modality"] = identity["preset"]
        if not options.domain:
            changes["domain"] = identity["domain"]
        if not options.device:  # the engines run on the CPU, also on a machine with a GPU
            changes["device"] = "cpu"
        return options.replace(**changes) if changes else options

    def check_options(self, options) -> None:
        """Refuse an :class:`~aaclip_med.inference.InferenceOptions` that this graph cannot honour."""
        from aaclip_med.presets import AUTO
        from aaclip_med.prompts import resolve_description

        identity = self.card["identity"]
        if options.class_name and options.class_name != identity["class_name"]:
            self._refuse("class", options.class_name, identity["class_name"])
        description = options.description or resolve_description(options.resolved_class, options.descriptions)
        if options.class_name or options.description:
            self.text_anchors(description)
        if options.domain and options.domain != identity["domain"]:
            self._refuse("domain", options.domain, identity["domain"])
        if options.modality != AUTO and identity.get("preset") and options.modality != identity["preset"]:
            self._refuse("modality preset", options.modality, identity["preset"])
        if options.precision not in ("auto", self.precision):
            self._refuse("precision", options.precision, self.precision)
        if options.references is not None:  # the memory needs the patch features, which the graph does not output
            raise ValueError(f"--references needs the torch engine: the exported graph in {self.folder} outputs maps, "
                             "not the patch features a reference memory is searched with; drop --engine/--model or "
                             "--references")

    def __call__(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Raw prediction of (B, 3, S, S) preprocessed images (``anchors`` unused: they are in the graph)."""
        if domain != self.card["identity"]["domain"]:
            self._refuse("domain", domain, self.card["identity"]["domain"])
        if tuple(images.shape[-2:]) != (self.config.image_size,) * 2:
            self._refuse("input size", tuple(images.shape[-2:]), (self.config.image_size,) * 2)
        outputs = self._run(np.ascontiguousarray(images.detach().float().cpu().numpy()))
        return Prediction(*(torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in outputs[:_PRED_OUTPUTS]))
