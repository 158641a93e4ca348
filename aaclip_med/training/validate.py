"""Validation of the current weights on a held-out split: pixel and image AUROC, per stage.

Each stage is judged on what it trains. Stage 1 trains the text side only: its maps are those its
loss sees, ``100 * surgery_feature @ T`` per level on the frozen Stage-1 image features, turned
into anomaly maps with the inference rule (spec 5: ``(S_A + 1 - S_N) / 2``, Gaussian smoothing,
bilinear upsampling, sum over levels); the image score is the map's maximum (Stage 1 trains no
global head). So the untrained image adapters and heads cannot sway the choice of the Stage-1
epoch. Stage 2 is judged on the full model's predictions (maps and image scores of spec 5).

Validation runs in the training precision (under the same autocast as the training step): the
epoch is chosen on the numbers the weights give in the precision they were trained in, and a bf16
run does not pay for fp32 forwards at every epoch end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from aaclip_med.evaluation import pixel_and_image_auroc
from aaclip_med.keys import Keys
from aaclip_med.model import AAClip
from aaclip_med.precision import autocast
from aaclip_med.training.batches import collate_samples

__all__ = ["stage_predictions", "validate"]


def stage_predictions(
    model: AAClip, images: torch.Tensor, anchors: torch.Tensor, domain: str, stage: int,
    feature_chunk: int | None = None,
    precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(anomaly maps (B, H, W), image scores (B,)) as ``stage`` is judged.

    Args:
        model: the network.
        images: (B, 3, S, S) CLIP-normalised.
        anchors: (B, D, 2) text anchors.
        domain: ``medical`` or ``industrial`` (smoothing kernel; Stage 2 also the image-score rule).
        stage: 1 (frozen Stage-1 features and the text anchors) or 2 (the full model).
        feature_chunk: images per frozen Stage-1 forward (memory bound, same result).
        precision: resolved precision to run in (``fp32``, ``bf16``, ``fp16``); maps and scores
            come back in float32 whatever it is.
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    with autocast(precision, images.device):
        maps, scores = _stage_outputs(model, images, anchors, domain, stage, feature_chunk)
    return maps.float(), scores.float()


def _stage_outputs(model: AAClip, images: torch.Tensor, anchors: torch.Tensor, domain: str, stage: int,
                   feature_chunk: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    if stage == 1:
        logits = model.patch_logits(model.surgery_features(images, chunk_size=feature_chunk), anchors)
        maps = model.anomaly_map(logits, domain, tuple(images.shape[-2:]))
        return maps, maps.flatten(1).amax(dim=1)
    pred = model.predict(images, anchors, domain)
    return pred.anomaly_map, pred.image_score


@torch.no_grad()
def validate(
    model: AAClip,
    data: Sequence[dict],
    anchors_for: Callable[[list[str]], torch.Tensor],
    domain: str,
    device: torch.device,
    stage: int,
    batch_size: int = 8,
    feature_chunk: int | None = None,
    precision: str = "fp32",
) -> dict:
    """Score every validation sample as ``stage`` is judged (see the module docstring).

    Args:
        model: the network (put in eval mode here).
        data: preprocessed samples: ``image`` (3, S, S), ``mask`` (1, S, S), ``label``, ``class_name``.
        anchors_for: class names (B) -> anchors (B, D, 2).
        domain: ``medical`` or ``industrial`` (smoothing, image-score rule).
        device: where to run.
        stage: 1 or 2: which stage's weights are judged.
        batch_size: images per forward pass.
        feature_chunk: images per frozen Stage-1 forward.
        precision: the training's resolved precision (validation runs under its autocast).

    Returns:
        ``{"pixel_auroc", "image_auroc"}`` (None with a ``*_reason`` when undefined).
    """
    model.eval()
    maps, masks, scores, labels = [], [], [], []
    for start in range(0, len(data), batch_size):
        batch = collate_samples([data[i] for i in range(start, min(start + batch_size, len(data)))])
        anchors = anchors_for(batch[Keys.CLASS_NAME]).to(device)
        amap, score = stage_predictions(model, batch[Keys.IMAGE].to(device), anchors, domain, stage,
                                       feature_chunk, precision)
        maps.append(amap.cpu())
        scores.append(score.cpu())
        masks.append(batch[Keys.MASK][:, 0])
        labels.append(batch[Keys.LABEL])
    return pixel_and_image_auroc(
        torch.cat(maps).numpy(), torch.cat(masks).numpy(), torch.cat(scores).tolist(), torch.cat(labels).tolist()
    )
