"""Which parameters a stage trains: a named helper that freezes the rest and logs the choice."""

from __future__ import annotations

import logging

from torch import nn

from aaclip_med.model import AAClip

__all__ = ["STAGE_MODULES", "freeze_for_stage"]

logger = logging.getLogger(__name__)

# spec 7: Stage 1 trains the text adapters and the new text projection;
# spec 8: Stage 2 trains the image adapters and the seg / det heads.
STAGE_MODULES = {1: ("text_adapters", "text_proj"), 2: ("image_adapters", "seg_heads", "det_head")}


def freeze_for_stage(model: AAClip, stage: int) -> list[nn.Parameter]:
    """Freeze every parameter except those of ``stage``'s modules and return the trainable ones.

    The CLIP backbone is always frozen. The list order is stable (module order, then parameter
    order), which the gradient all-reduce and the optimizer state rely on.

    Args:
        model: the network.
        stage: 1 or 2.

    Returns:
        the trainable parameters.
    """
    if stage not in STAGE_MODULES:
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    for param in model.parameters():
        param.requires_grad_(False)
    modules = model.trainable_modules()
    params: list[nn.Parameter] = []
    for name in STAGE_MODULES[stage]:
        for param in modules[name].parameters():
            param.requires_grad_(True)
            params.append(param)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    logger.info(
        "Stage %d trains %s: %d tensors, %d parameters; %d parameters frozen",
        stage,
        ", ".join(STAGE_MODULES[stage]),
        len(params),
        sum(p.numel() for p in params),
        frozen,
    )
    return params
