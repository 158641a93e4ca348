"""Exported graphs as the predictor's network: the same loading, slicing, writers and calibration.

:class:`DeployedModel` reads a folder written by ``aaclip-med export`` (model file + ``card.json``)
and runs its graph with one engine of :data:`~aaclip_med.export.registry.ENGINES` (its runner in
:mod:`aaclip_med.export.engines`). It is an :class:`~aaclip_med.inference.network.ExportedNetwork`,
so :class:`~aaclip_med.inference.Predictor` runs it where it runs the fast torch path for an
:class:`~aaclip_med.model.AAClip`, and every entry point (CLI, API, bundle, PACS) runs exported
graphs through one runner. Before any image is read, the folder is checked against its card (a
missing, cut-short or replaced model file, a card edited by hand) and the run against the card
(:meth:`DeployedModel.check_options`): each differing setting is refused by name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from aaclip_med.errors import ParameterError
from aaclip_med.export.card import CARD_NAME, card_mismatches, check_files, read_card
from aaclip_med.export.choice import AUTO_ENGINE, choose_folder_engine
from aaclip_med.export.deps import require
from aaclip_med.export.registry import FORMATS, formats_of, load_function
from aaclip_med.export.registry import engine as engine_entry
from aaclip_med.identity import network_record
from aaclip_med.inference.network import ExportedConfig, ExportedNetwork
from aaclip_med.model.aaclip import Prediction
from aaclip_med.presets import AUTO
from aaclip_med.prompts import resolve_description

__all__ = ["DeployedModel"]

logger = logging.getLogger(__name__)

_PRED_OUTPUTS = 4  # anomaly_map, image_score, global_score, map_max (Prediction's fields, in order)


class DeployedModel(ExportedNetwork):
    """An exported AA-CLIP graph of one class, run by ``engine``, in place of the torch network.

    Args:
        folder: a folder written by ``aaclip-med export`` (its ``card.json`` names the model file).
        engine: one of :data:`~aaclip_med.export.registry.ENGINES`, which must be able to run the folder's
            format, or ``auto``: the first installed engine that runs it (in the format's order).
        threads: CPU threads of the engine (default: torch's thread count).

    Raises:
        FileNotFoundError: the folder, its card or a file the card names is missing.
        ValueError: the engine cannot run the folder's format; the card was edited; a model file was
            cut short or changed; the engine cannot load the model file.
        ImportError: the engine's package is not installed (naming the ``export`` extra).
    """

    def __init__(self, folder: str | os.PathLike, engine: str = "onnxruntime", threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.card = read_card(self.folder)
        if engine == AUTO_ENGINE and self.card.get("format") in FORMATS:
            from aaclip_med.export.auto import installed_modules

            engine = choose_folder_engine(self.card["format"], installed_modules()).engine
        spec = engine_entry(engine)
        self.engine = engine
        fmt = self.card["format"]
        if fmt not in formats_of(engine):
            usable = FORMATS[fmt].engines if fmt in FORMATS else ("none of this version's engines",)
            raise ParameterError("engine", engine, f"cannot run the {fmt} graph in {self.folder}; use {{engine}} "
                                 f"{' or '.join(usable)}, or export with {{fmt}} {formats_of(engine)[0]}")
        check_files(self.card, self.folder)
        for module in spec.needs:
            require(module, f"--engine {engine}")
        identity = self.card["identity"]
        self.config = ExportedConfig(identity["backbone"], int(identity["image_size"]), identity.get("pretrained"),
                                     tuple(identity["levels"]), float(identity["logit_scale"]))
        self.precision = self.card["precision"]
        path = self.folder / self.card["file"]
        try:
            self._run = load_function(spec.runner)(path, threads or torch.get_num_threads())
        except (ImportError, MemoryError):
            raise
        except Exception as err:  # each runtime has its own error types; the file is what the user can act on
            raise ValueError(f"{path}: {engine} cannot load it ({type(err).__name__}: {str(err)[:300]}); export the "
                             "graph again") from err
        logger.info("exported %s %s graph of %r (%s) run by %s", self.precision, fmt, identity["class_name"],
                    identity["domain"], engine)
        self._warn_int8_saturation()

    def _warn_int8_saturation(self) -> None:
        """Name an 8-bit-weight int8 graph run on a CPU without int8 dot products (its kernels saturate)."""
        from aaclip_med.precision import cpu_has_int8_dot

        bits = (self.card.get("int8") or {}).get("weight_bits")
        if self.precision == "int8" and bits != 7 and not cpu_has_int8_dot():
            recorded = f"{bits}-bit weights" if bits else "weights of unrecorded width (an older export: 8 bits)"
            logger.warning("the int8 graph in %s has %s, and this CPU has no int8 dot products (VNNI/AMX): its "
                           "uint8 x int8 kernels saturate and the map moves (measured Pearson 0.995 against fp32). "
                           "Export it again on this machine (7-bit weights), or use the fp32 graph", self.folder,
                           recorded)

    @property
    def identity(self) -> dict:
        """The card's identity of the network (backbone, size, weights and their sha256, class, ...)."""
        return dict(self.card["identity"])

    @property
    def recorded_identity(self) -> dict:
        """What run.json records of the network: the card's identity, and which graph ran it how."""
        record = network_record(self.card["identity"]) | {
            "engine": {"name": self.engine, "format": self.card["format"], "precision": self.precision},
            "exported_model": {"folder": str(self.folder)}}
        choice = getattr(self, "engine_choice", None)  # set by NetworkChoice.build: why this engine runs
        return record | ({"engine_choice": choice} if choice else {})

    # the parts of the nn.Module interface the runner uses
    def to(self, device: str | torch.device) -> DeployedModel:
        if torch.device(device).type != engine_entry(self.engine).device:
            raise ParameterError("device", device, f"the {self.engine} engine runs on the CPU; drop {{device}}")
        return self

    def _refuse(self, given: dict[str, tuple[str, object]]) -> None:
        lines = card_mismatches(self.card, given)
        if lines:
            raise ValueError(f"the exported graph in {self.folder} cannot run this ({self.folder / CARD_NAME}): "
                             f"{'; '.join(lines)}. Export the graph again for it, or drop the option")

    def text_anchors(self, description: str) -> torch.Tensor:
        """The anchors are folded into the graph: only its own description can be asked for (none returned)."""
        self._refuse({"description": ("description", description)})
        return torch.zeros(0)

    def fill_options(self, options):
        """``options`` with what the run leaves open taken from the card (class, description, preset,
        domain), and the CPU as the device."""
        identity = self.card["identity"]
        changes = {}
        if not options.class_name and not options.description:
            changes |= {"class_name": identity["class_name"], "description": identity["description"]}
        if options.modality == AUTO and identity.get("preset") and identity["preset"] != AUTO:
            changes["modality"] = identity["preset"]
        if not options.domain:
            changes["domain"] = identity["domain"]
        if not options.device:  # the engines run on the CPU, also on a machine with a GPU
            changes["device"] = engine_entry(self.engine).device
        return options.replace(**changes) if changes else options

    def check_options(self, options) -> None:
        """Refuse an :class:`~aaclip_med.inference.InferenceOptions` that this graph cannot honour,
        naming every setting that differs from the card."""
        if options.references is not None:  # the memory needs the patch features, which the graph does not output
            raise ParameterError("references", options.references, "needs the torch engine: the exported graph in "
                                 f"{self.folder} outputs maps, not the patch features a reference memory is searched "
                                 "with; drop {engine}/{model} or {references}")
        identity = self.card["identity"]
        asked = options.class_name or options.description
        description = options.description or resolve_description(options.resolved_class, options.descriptions)
        self._refuse({
            "class_name": ("class_name", options.class_name),
            "description": ("description", description if asked else None),
            "domain": ("domain", options.domain),
            "modality": ("preset", options.modality if options.modality != AUTO and identity.get("preset") else None),
            "precision": ("precision", None if options.precision == "auto" else options.precision),
        })

    def __call__(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Raw prediction of (B, 3, S, S) preprocessed images (``anchors`` unused: they are in the graph)."""
        self._refuse({"domain": ("domain", domain), "image_size": ("image_size", images.shape[-1])})
        if images.shape[-2] != images.shape[-1]:
            raise ValueError(f"the exported graph in {self.folder} takes square inputs, got {tuple(images.shape[-2:])}")
        outputs = self._run(np.ascontiguousarray(images.detach().float().cpu().numpy()))
        return Prediction(*(torch.from_numpy(np.asarray(o, dtype=np.float32)) for o in outputs[:_PRED_OUTPUTS]))

