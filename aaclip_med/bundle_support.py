"""What the MONAI bundle (``bundles/aaclip_zero_shot``) needs beyond the library's public entry points.

The bundle configs instantiate library functions and classes by ``_target_``. MONAI's tooling
(``verify_net_in_out``, inferers, TorchScript export) additionally expects a ``network_def``: a
module that takes one image tensor and returns one prediction tensor. :class:`AnomalyMapNet`
is that module; it composes :meth:`AAClip.text_anchors` and :meth:`AAClip.predict` and adds no
computation of its own.
"""

from __future__ import annotations

import torch
from torch import nn

from aaclip_med.keys import Domain
from aaclip_med.model import AAClip

__all__ = ["AnomalyMapNet"]


class AnomalyMapNet(nn.Module):
    """AA-CLIP as a single-input, single-output network for one class description.

    Args:
        model: the AA-CLIP network (e.g. from :func:`aaclip_med.model.build_aaclip`); shared, not
            copied, so adapters loaded into it later are used here too.
        description: class description whose text anchors score the images (e.g. ``"scan"``).
        domain: ``medical`` or ``industrial`` (smoothing kernel of the map, spec section 5).

    Shapes:
        input ``(B, 3, S, S)`` CLIP-normalised float32, S = ``model.config.image_size``;
        output ``(B, 1, S, S)`` float32 raw anomaly map (sum of the four level maps, not normalised).
    """

    def __init__(self, model: AAClip, description: str = "scan", domain: str = Domain.MEDICAL) -> None:
        super().__init__()
        if not description:
            msg = "AnomalyMapNet needs a class description (e.g. 'scan'), got an empty one."
            raise ValueError(msg)
        self.model = model
        self.description = description
        self.domain = str(Domain(domain))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        size = int(self.model.config.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):  # else a tensor-size error deep in the ViT
            msg = (f"AnomalyMapNet expects (B, 3, {size}, {size}) images (image_size {size} of "
                   f"{self.model.config.backbone}), got {tuple(images.shape)}; for verify_net_in_out at another "
                   "size, set --image_size and the metadata's --_meta_#network_data_format#inputs#image#spatial_shape "
                   "alike (see the bundle's README)")
            raise ValueError(msg)
        anchors = self.model.text_anchors(self.description)  # (D, 2), cached per description
        prediction = self.model.predict(images, anchors, self.domain)
        return prediction.anomaly_map.float().unsqueeze(1)  # (B, S, S) -> (B, 1, S, S)
