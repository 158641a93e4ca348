"""The network a run uses, chosen once for every entry point: an AA-CLIP network built from its files,
or a graph written by ``aaclip-med export`` run by one engine.

:class:`NetworkChoice` holds the choice (what the model options of the commands and of the MONAI
Deploy app say), :meth:`NetworkChoice.check` refuses one that cannot work before anything heavy is
imported (standard library and light modules only), and :meth:`NetworkChoice.build` builds it.
Messages name the command-line options, which is how users give these settings.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from aaclip_med.errors import ParameterError
from aaclip_med.export.card import CARD_NAME, card_mismatches, read_card
from aaclip_med.export.choice import AUTO_ENGINE, EngineChoice, choose_folder_engine, requested_engine
from aaclip_med.export.registry import TORCH_ENGINE, engine
from aaclip_med.files import sha256_file
from aaclip_med.identity import is_random_weights
from aaclip_med.model.adapter_file import read_adapter_metadata
from aaclip_med.model.config import check_image_size

__all__ = ["PAPER_BACKBONE", "NetworkChoice"]

logger = logging.getLogger(__name__)

PAPER_BACKBONE = "ViT-L-14-336"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def _is_weights_file(value: str) -> bool:
    return os.sep in value or value.lower().endswith(_WEIGHT_SUFFIXES)


@dataclass(frozen=True)
class NetworkChoice:
    """Which network to run.

    Attributes:
        weights: trained adapters (a ``.safetensors`` file); None: untrained adapters.
        backbone: open_clip model name (None: the one recorded in ``weights``, else ``default_backbone``).
        image_size: input side in pixels (None: the recorded or the backbone preset's).
        backbone_weights: CLIP weights: a file, an open_clip tag or ``random``.
        quick_gelu: QuickGELU activations.
        model: a folder written by ``aaclip-med export``; the network is then its graph.
        engine: what runs the network: ``auto`` (the rule of :mod:`aaclip_med.export.choice`), or one of
            :data:`~aaclip_med.export.registry.ENGINES`; ``torch`` runs the network itself, or the
            TorchScript graph of ``model``.
        default_backbone: the backbone built without ``weights`` and ``backbone``.
        graph_cache: the folder ``auto`` caches exported graphs in (None: the user's cache folder,
            :func:`aaclip_med.export.auto.cache_root`).
    """

    weights: str | None = None
    backbone: str | None = None
    image_size: int | None = None
    backbone_weights: str | None = None
    quick_gelu: bool = False
    model: str | None = None
    engine: str = AUTO_ENGINE
    default_backbone: str = PAPER_BACKBONE
    graph_cache: str | None = None

    def check(self) -> None:
        """Refuse a choice that cannot work, before anything heavy is imported.

        Raises:
            FileNotFoundError: ``--weights``, a ``--backbone-weights`` file or the ``--model`` card is missing.
            ValueError: an engine without ``--model``; model options that differ from the ``--model``
                card; ``--weights`` that is not a safetensors file; ``--image-size`` that is not a
                multiple of the patch size or differs from the adapters'; ``--backbone`` that
                differs from the adapters'.
        """
        if self.engine != AUTO_ENGINE:
            engine(self.engine)
        if self.engine not in (TORCH_ENGINE, AUTO_ENGINE) and not self.model:
            raise ParameterError("engine", self.engine, "runs an exported graph: give {model} DIR (written by "
                                 "'aaclip-med export')")
        if self.backbone_weights and _is_weights_file(self.backbone_weights) and not Path(self.backbone_weights).is_file():
            raise FileNotFoundError(f"--backbone-weights {self.backbone_weights}: no such file (give a local file, an "
                                    "open_clip tag such as 'openai', or 'random')")
        if self.model:
            self._check_card()
            return
        backbone = self.backbone or self.default_backbone
        if self.weights:
            config = read_adapter_metadata(self.weights)["config"]
            recorded_backbone, recorded_size = config.get("backbone"), config.get("image_size")
            if self.backbone and recorded_backbone and self.backbone != recorded_backbone:
                raise ParameterError("backbone", self.backbone, f"differs from the backbone {recorded_backbone} of "
                                     f"{self.weights}")
            if self.image_size and recorded_size and self.image_size != recorded_size:
                msg = (f"conflicts with {self.weights}: its adapters were trained at {recorded_size} px and run at "
                       f"that size; drop {{image_size}} or pass {recorded_size}")
                raise ParameterError("image_size", self.image_size, msg)
            backbone = recorded_backbone or backbone
        if self.image_size is not None:
            check_image_size(self.image_size, backbone)

    def _check_card(self) -> None:
        """``--model``: the card is readable and the model options given agree with it (each differing one named)."""
        card = read_card(self.model)
        if self.weights and not Path(self.weights).is_file():
            raise FileNotFoundError(f"--weights {self.weights}: no such file")
        given = {
            "--backbone": ("backbone", self.backbone),
            "--image-size": ("image_size", self.image_size),
            "--backbone-weights": ("pretrained", self._pretrained_identity(card)),
        }
        lines = card_mismatches(card, given)
        if self.weights and card_mismatches(card, {"--weights": ("weights_sha256", sha256_file(self.weights))}):
            exported = card["identity"].get("weights") or "untrained adapters"
            lines.append(f"--weights: {self.weights} are not the adapters the graph was exported with ({exported}, "
                         "compared by sha256)")
        if self.quick_gelu:
            lines.append("--quick-gelu: the exported graph's activations are fixed in it")
        if lines:
            raise ValueError(f"model options that differ from the exported graph in {self.model} "
                             f"({Path(self.model) / CARD_NAME}): {'; '.join(lines)}. Drop them (the card sets the "
                             "network), or export the graph again with them")

    def _pretrained_identity(self, card: dict) -> str | None:
        """``--backbone-weights`` as the card's identity compares it: a file by its sha256, 'random' as the card's."""
        value = self.backbone_weights
        if not value:
            return None
        if Path(value).is_file():
            return f"sha256:{sha256_file(value)}"
        if is_random_weights(value) and card["identity"].get("random_weights"):
            return card["identity"].get("pretrained")
        return value

    def build(self, for_training: bool = False, options=None, several_classes: bool = False):
        """The network: an :class:`~aaclip_med.export.DeployedModel` for ``model`` (or for the cached graph
        ``auto`` picks), else an :class:`~aaclip_med.model.AAClip` (run :meth:`check` first).

        The engine that runs and why is the network's ``engine_choice`` (recorded in run.json) and is
        logged in one line.

        Args:
            for_training: untrained adapters are expected then, so no warning about them.
            options: the inference run's :class:`~aaclip_med.inference.InferenceOptions`, which
                ``auto`` decides by (None: not an inference run, torch).
            several_classes: the run scores several classes (a manifest run).
        """
        if self.model:
            return self._deployed(self.model, self._folder_choice())
        network = self._build_network(for_training)
        if options is None:  # not an inference run (training, export, references): torch, nothing to record
            return network
        if self.engine != AUTO_ENGINE:
            choice = requested_engine(self.engine)
        else:
            from aaclip_med.export.auto import decide

            choice = decide(options, several_classes)
        if choice.engine == TORCH_ENGINE:
            network.engine_choice = choice.record()
            logger.info("%s", choice.describe())
            return network
        from aaclip_med.export.auto import cached_graph

        try:
            folder = cached_graph(network, self.weights, options, choice.fmt, self.graph_cache)
        except OSError as err:  # a cache that cannot be written: torch computes the same maps
            choice = dataclasses.replace(choice, engine=TORCH_ENGINE, fmt=None,
                                         reason=f"the graph cache cannot be written ({err}); torch instead of {choice.engine}")
            logger.warning("%s", choice.describe())
            network.engine_choice = choice.record()
            return network
        return self._deployed(folder, dataclasses.replace(choice, cache=str(folder)))

    def _folder_choice(self) -> EngineChoice:
        """The engine that runs ``model``: the one named, or with ``auto`` the first installed one of its format."""
        if self.engine != AUTO_ENGINE:
            return requested_engine(self.engine, read_card(self.model)["format"])
        from aaclip_med.export.auto import installed_modules

        return choose_folder_engine(read_card(self.model)["format"], installed_modules())

    @staticmethod
    def _deployed(folder, choice: EngineChoice):
        from aaclip_med.export.deployed import DeployedModel

        deployed = DeployedModel(folder, engine=choice.engine)
        deployed.engine_choice = dataclasses.replace(choice, precision=deployed.precision).record()
        logger.info("%s", choice.describe())
        return deployed

    def _build_network(self, for_training: bool):
        from aaclip_med.model import AAClipConfig, build_aaclip, load_adapters

        if self.weights:
            model = load_adapters(self.weights, pretrained=self.backbone_weights)
            if self.backbone and self.backbone != model.config.backbone:
                msg = f"differs from the backbone {model.config.backbone} of {self.weights}"
                raise ParameterError("backbone", self.backbone, msg)
            return model
        if not for_training:
            logger.warning("No --weights given: the adapters are untrained (Xavier-initialised); maps are not AA-CLIP's.")
        config = AAClipConfig(backbone=self.backbone or self.default_backbone, image_size=self.image_size,
                              pretrained=self.backbone_weights, quick_gelu=self.quick_gelu)
        return build_aaclip(config)
