"""Per-batch losses of the two stages (spec sections 7 and 8) and the per-image text anchors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.utils.checkpoint import checkpoint

from aaclip_med.keys import Keys
from aaclip_med.losses import classification_loss, disentangle_loss, segmentation_loss
from aaclip_med.model import AAClip
from aaclip_med.prompts import resolve_description

__all__ = ["describe_classes", "fixed_anchor_table", "stack_anchors", "stage1_losses", "stage2_losses"]


def describe_classes(
    class_names: Sequence[str], overrides: Mapping[str, str] | None = None, dataset: str | None = None
) -> dict[str, str]:
    """Class name -> description (user overrides first, then the registries), for every class given."""
    return {name: resolve_description(name, overrides, dataset) for name in sorted(set(class_names))}


def stack_anchors(table: Mapping[str, torch.Tensor], descriptions: Sequence[str]) -> torch.Tensor:
    """Per-image anchors (B, D, 2) from a description -> (D, 2) table."""
    return torch.stack([table[d] for d in descriptions])


def level_seg_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """:func:`segmentation_loss` of one level, recomputed in backward instead of stored.

    The loss works at mask resolution (B, 2, H, W): upsampled logits, softmax and focal/dice terms
    of every level would otherwise stay in memory until backward (about 1 GB for 4 levels at batch
    16 and 518 px), more than the text side itself. Only the patch-grid logits are kept; the
    value and the gradients are the same.
    """
    if not torch.is_grad_enabled() or not logits.requires_grad:
        return segmentation_loss(logits, masks)
    return checkpoint(segmentation_loss, logits, masks, use_reentrant=False)


@torch.no_grad()
def fixed_anchor_table(model: AAClip, descriptions: Sequence[str]) -> dict[str, torch.Tensor]:
    """Anchors (D, 2) of each description, computed once and detached (Stage 2, spec 8)."""
    return {d: model.compute_text_anchors(d).detach().float() for d in sorted(set(descriptions))}


def stage1_losses(
    model: AAClip,
    batch: Mapping,
    descriptions: Sequence[str],
    disentangle_weight: float,
    levels: str = "all",
    feature_chunk: int | None = None,
) -> dict[str, torch.Tensor]:
    """Stage 1: seg loss of ``100 * surgery_feature @ T`` per level + ``disentangle_weight * L_dis``.

    The image side is the frozen CLIP (value-value attention), run without gradients; only the
    text adapters and projection receive gradients through the anchors T.

    Args:
        model: the network (its text side trains).
        batch: ``image`` (B, 3, S, S), ``mask`` (B, 1, S, S).
        descriptions: per-image class descriptions, length B.
        disentangle_weight: weight of the disentangle loss (spec 6: gamma = 0.1).
        levels: "all" sums the seg loss over levels; "last" uses the last level only (public code).
        feature_chunk: images per frozen image forward (bounds activation memory; same result).

    Returns:
        ``loss`` (to back-propagate), ``seg`` and ``dis``.
    """
    images, masks = batch[Keys.IMAGE], batch[Keys.MASK]
    with torch.no_grad():
        features = model.surgery_features(images, chunk_size=feature_chunk)  # per level (B, L, D)
    table = {d: model.compute_text_anchors(d) for d in sorted(set(descriptions))}
    anchors = stack_anchors(table, descriptions)  # (B, D, 2), with gradients
    logits = model.patch_logits(features, anchors)  # per level (B, 2, g, g)
    used = logits if levels == "all" else logits[-1:]
    seg = sum(level_seg_loss(level, masks) for level in used)
    dis = disentangle_loss(anchors)
    return {"loss": seg + disentangle_weight * dis, "seg": seg, "dis": dis}


def stage2_losses(model: AAClip, batch: Mapping, anchors: torch.Tensor,
                  image_logit_scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Stage 2: cross-entropy on the global logits + seg loss summed over the levels.

    Args:
        model: the network (its image adapters and heads train).
        batch: ``image`` (B, 3, S, S), ``mask`` (B, 1, S, S), ``label`` (B,).
        anchors: fixed per-image anchors (B, D, 2).
        image_logit_scale: factor on ``det @ T`` before the cross-entropy (spec 6: 1, no
            temperature; see :attr:`aaclip_med.training.config.TrainConfig.image_logit_scale`).

    Returns:
        ``loss``, ``seg`` and ``ce``.
    """
    feats = model.encode_image(batch[Keys.IMAGE])
    logits = model.patch_logits(feats.levels, anchors)
    seg = sum(level_seg_loss(level, batch[Keys.MASK]) for level in logits)
    global_logits = image_logit_scale * model.global_logits(feats.global_feature, anchors)  # (B, 2)
    ce = classification_loss(global_logits, batch[Keys.LABEL])
    return {"loss": seg + ce, "seg": seg, "ce": ce}
