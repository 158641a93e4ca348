"""AA-CLIP as a pure image -> map graph: the text side folded in, ready for tracing and export.

:class:`AnomalyGraph` is what ``aaclip-med export`` writes (TorchScript, ONNX, OpenVINO) and what
the MONAI bundle's ``network_def`` wraps. The text anchors of one class description are computed
once, when the graph is made, and kept as a buffer, so the exported graph takes only the image.
Every number is computed by :class:`~aaclip_med.model.AAClip`'s own methods (image tower with
adapters, heads, maps, :func:`aaclip_med.scoring.combine_image_score`): the graph adds no math.

Only the image side is registered as submodules (``visual``, ``image_adapters``, ``seg_heads``,
``det_head``): a traced graph holds those weights and the anchors, not the text tower.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from aaclip_med.keys import Domain
from aaclip_med.model.aaclip import AAClip

__all__ = ["AnomalyGraph", "GraphOutputs", "INPUT_NAME", "OUTPUT_NAMES", "LEVEL_MAPS_NAME"]

INPUT_NAME = "image"  # (B, 3, S, S) CLIP-normalised float32
OUTPUT_NAMES = ("anomaly_map", "image_score", "global_score", "map_max")
LEVEL_MAPS_NAME = "level_maps"  # (B, n_levels, S, S), only when the graph is made with level_maps=True


class GraphOutputs(NamedTuple):
    """Outputs of :class:`AnomalyGraph` (raw values of spec section 5)."""

    anomaly_map: torch.Tensor  # (B, S, S) sum of the smoothed, upsampled level maps
    image_score: torch.Tensor  # (B,) the package's score rule for the graph's domain
    global_score: torch.Tensor  # (B,) s_g
    map_max: torch.Tensor  # (B,) max of anomaly_map


class AnomalyGraph(nn.Module):
    """One class description and one domain of an AA-CLIP network, as an image-only module.

    Args:
        model: the AA-CLIP network with its adapters loaded (the anchors are taken now).
        description: class description whose anchors score the images.
        domain: ``medical`` or ``industrial`` (smoothing kernel and image-score rule).
        level_maps: also return the per-level maps, (B, n_levels, S, S), as a fifth output.

    Shapes:
        input (B, 3, S, S) CLIP-normalised float32, S = ``model.config.image_size``, any B;
        outputs :class:`GraphOutputs` (+ level maps), all float32.
    """

    def __init__(self, model: AAClip, description: str, domain: str = Domain.MEDICAL, level_maps: bool = False) -> None:
        super().__init__()
        if not description:
            raise ValueError("AnomalyGraph needs a class description (e.g. 'scan'), got an empty one.")
        self.description = description
        self.domain = str(Domain(domain))
        self.level_maps = level_maps
        self.image_size = int(model.config.image_size)
        # the image side, registered so that tracing and state_dict see exactly these weights
        self.visual = model.clip.visual
        self.image_adapters = model.image_adapters
        self.seg_heads = model.seg_heads
        self.det_head = model.det_head
        self.register_buffer("anchors", model.text_anchors(description).detach().float().clone())  # (D, 2)
        # AAClip's methods run the computation; kept in a list so its text tower is not a submodule
        self._network = [model]

    @property
    def config(self):
        return self._network[0].config

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, S, S) -> (anomaly_map, image_score, global_score, map_max[, level_maps])."""
        model = self._network[0]
        size = (images.shape[-2], images.shape[-1])
        feats = model.encode_image(images)
        pred = model.predict_from_features(feats, self.anchors, self.domain, size)
        outputs = (pred.anomaly_map.float(), pred.image_score.float(), pred.global_score.float(), pred.map_max.float())
        if not self.level_maps:
            return outputs
        logits = model.patch_logits(feats.levels, self.anchors)
        levels = torch.stack([model.anomaly_map([level], self.domain, size) for level in logits], dim=1)  # (B, n, S, S)
        return (*outputs, levels)
