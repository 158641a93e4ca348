"""What inference asks of an exported network: the one type the predictor, the options and run.json
test for, instead of probing a model for methods.

A run's network is either an :class:`~aaclip_med.model.AAClip` (run by the fast torch path) or an
:class:`ExportedNetwork`: a graph fixed at export for one class, domain and preset, that runs as it is
(no text tower, no fast path) and whose record (a model card) fixes some of the run's settings.
:class:`aaclip_med.export.DeployedModel` is the package's one; inference knows only this base, so
it never imports the exporter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from aaclip_med.inference.options import InferenceOptions
    from aaclip_med.model.aaclip import Prediction

__all__ = ["ExportedConfig", "ExportedNetwork", "is_exported", "fill_options"]


@dataclass(frozen=True)
class ExportedConfig:
    """What inference reads of a network's config (as an exported network's record gives it)."""

    backbone: str
    image_size: int
    pretrained: str | None
    levels: tuple[int, ...]
    logit_scale: float


class ExportedNetwork(ABC):
    """A network graph fixed at export, run in place of the torch network by the same predictor.

    Attributes:
        config: its :class:`ExportedConfig`.
        precision: the arithmetic it was exported in (what runs; ``--precision`` must agree).
    """

    config: ExportedConfig
    precision: str

    @property
    @abstractmethod
    def recorded_identity(self) -> dict[str, Any]:
        """What run.json records of the network (the identity it was exported with, and what ran it)."""

    @abstractmethod
    def fill_options(self, options: InferenceOptions) -> InferenceOptions:
        """``options`` with what the run leaves open taken from the network's record."""

    @abstractmethod
    def check_options(self, options: InferenceOptions) -> None:
        """Raise ValueError naming each setting of ``options`` the network cannot honour."""

    @abstractmethod
    def text_anchors(self, description: str) -> torch.Tensor:
        """The anchors are in the graph: refuse another description (an empty tensor otherwise)."""

    @abstractmethod
    def __call__(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Raw prediction of (B, 3, S, S) preprocessed images."""

    def to(self, device: Any) -> ExportedNetwork:
        return self

    def eval(self) -> ExportedNetwork:
        return self


def is_exported(model: object) -> bool:
    """Whether ``model`` is an :class:`ExportedNetwork` (runs as it is, with its record's settings)."""
    return isinstance(model, ExportedNetwork)


def fill_options(model: object, options: InferenceOptions) -> InferenceOptions:
    """``options`` with what an exported network's record fixes filled in; unchanged for a torch network."""
    return model.fill_options(options) if isinstance(model, ExportedNetwork) else options
