"""What the MONAI bundle (``bundles/aaclip_zero_shot``) needs beyond the library's public entry points.

The bundle configs instantiate library functions and classes by ``_target_``. MONAI's tooling
(``verify_net_in_out``, ``ckpt_export``, inferers) additionally expects a ``network_def``: a module
that takes one image tensor and returns one prediction tensor, whose state is one checkpoint
(``models/model.pt``). :class:`AnomalyMapNet` is that module: the image-only
:class:`~aaclip_med.model.graph.AnomalyGraph` (text anchors folded in as a buffer) returning its
map with a channel axis. It adds no computation of its own, and it traces
(``ckpt_export --use_trace True``): the exported TorchScript holds only the image side.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from aaclip_med.files import atomic_path
from aaclip_med.keys import Domain
from aaclip_med.model import AAClip
from aaclip_med.model.graph import AnomalyGraph

__all__ = ["AnomalyMapNet", "save_network_checkpoint"]


class AnomalyMapNet(AnomalyGraph):
    """AA-CLIP as a single-input, single-output network for one class description.

    Args:
        model: the AA-CLIP network (e.g. from :func:`aaclip_med.model.build_aaclip`); its image side
            is shared, not copied, and the anchors of ``description`` are taken now (a checkpoint
            loaded later replaces both).
        description: class description whose text anchors score the images (e.g. ``"scan"``).
        domain: ``medical`` or ``industrial`` (smoothing kernel of the map, spec section 5).

    Shapes:
        input ``(B, 3, S, S)`` CLIP-normalised float32, S = ``model.config.image_size``;
        output ``(B, 1, S, S)`` float32 raw anomaly map (sum of the four level maps, not normalised).
    """

    def __init__(self, model: AAClip, description: str = "scan", domain: str = Domain.MEDICAL) -> None:
        super().__init__(model, description, domain)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):  # else a tensor-size error deep in the ViT
            msg = (f"AnomalyMapNet expects (B, 3, {size}, {size}) images (image_size {size} of "
                   f"{self.config.backbone}), got {tuple(images.shape)}; for verify_net_in_out at another "
                   "size, set --image_size and the metadata's --_meta_#network_data_format#inputs#image#spatial_shape "
                   "alike (see the bundle's README)")
            raise ValueError(msg)
        return super().forward(images)[0].unsqueeze(1)  # (B, S, S) -> (B, 1, S, S)


def save_network_checkpoint(network: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``network.state_dict()`` to ``path`` (the ``models/model.pt`` that ``ckpt_export`` loads), atomically."""
    with atomic_path(path) as tmp:
        torch.save(network.state_dict(), tmp)
    return Path(path)
