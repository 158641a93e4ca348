"""Validation of the current weights on a held-out split: pixel and image AUROC."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from aaclip_med.evaluation import pixel_and_image_auroc
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip
from aaclip_med.training.batches import collate_samples

__all__ = ["validate"]


@torch.no_grad()
def validate(
    model: AAClip,
    data: Sequence[dict],
    anchors_for: Callable[[list[str]], torch.Tensor],
    domain: str,
    device: torch.device,
    batch_size: int = 8,
) -> dict:
    """Predict every validation sample and score the maps and image scores.

    Args:
        model: the network (put in eval mode here).
        data: preprocessed samples: ``image`` (3, S, S), ``mask`` (1, S, S), ``label``, ``class_name``.
        anchors_for: class names (B) -> anchors (B, D, 2).
        domain: ``medical`` or ``industrial`` (smoothing, image-score rule).
        device: where to run.
        batch_size: images per forward pass.

    Returns:
        ``{"pixel_auroc", "image_auroc"}`` (None with a ``*_reason`` when undefined).
    """
    model.eval()
    maps, masks, scores, labels = [], [], [], []
    for start in range(0, len(data), batch_size):
        batch = collate_samples([data[i] for i in range(start, min(start + batch_size, len(data)))])
        anchors = anchors_for(batch[Keys.CLASS_NAME]).to(device)
        pred = model.predict(batch[Keys.IMAGE].to(device), anchors, domain)
        maps.append(pred.anomaly_map.float().cpu())
        scores.append(pred.image_score.float().cpu())
        masks.append(batch[Keys.MASK][:, 0])
        labels.append(batch[Keys.LABEL])
    return pixel_and_image_auroc(
        torch.cat(maps).numpy(), torch.cat(masks).numpy(), torch.cat(scores).tolist(), torch.cat(labels).tolist()
    )
