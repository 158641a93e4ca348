"""Training losses of spec section 6: focal, dice, segmentation (focal + 2 dice), disentangle.

All losses are computed in float32 whatever the autocast dtype of the logits, because the
``1e-5`` clamps and ``log`` of the focal loss lose their meaning in half precision.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["focal_loss", "dice_loss", "segmentation_loss", "disentangle_loss", "classification_loss"]

_EPS = 1e-5  # spec 6: one-hot clamp and the offset added to p_t


def focal_loss(probs: torch.Tensor, mask: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss over two classes (alpha 1 for both), mean over every pixel of the batch.

    Per pixel: the one-hot of ``mask`` is clamped to ``[1e-5, 1 - 1e-5]``,
    ``p_t = sum_c onehot_c * P_c + 1e-5`` and the loss is ``-(1 - p_t)^gamma * log(p_t)``.

    Args:
        probs: (B, 2, H, W) class probabilities (softmax over dim 1); channel 0 normal, 1 anomalous.
        mask: (B, 1, H, W) or (B, H, W) ground truth in {0, 1}.
        gamma: focusing exponent (2 in AA-CLIP).

    Returns:
        scalar tensor.
    """
    target = (mask.reshape(probs.shape[0], 1, *probs.shape[2:]) > 0.5).float()  # (B, 1, H, W)
    onehot = torch.cat([1.0 - target, target], dim=1).clamp(_EPS, 1.0 - _EPS)  # (B, 2, H, W)
    p_t = (onehot * probs.float()).sum(dim=1) + _EPS  # (B, H, W)
    return (-((1.0 - p_t) ** gamma) * torch.log(p_t)).mean()


def dice_loss(prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean_b (2 sum(p y) + 1) / (sum p + sum y + 1)`` with sums per image.

    Args:
        prob: (B, H, W) or (B, 1, H, W) probabilities of one class.
        target: same number of elements per image, values in [0, 1].

    Returns:
        scalar tensor.
    """
    p = prob.float().reshape(prob.shape[0], -1)  # (B, H*W)
    y = target.float().reshape(prob.shape[0], -1)
    ratio = (2.0 * (p * y).sum(dim=1) + 1.0) / (p.sum(dim=1) + y.sum(dim=1) + 1.0)  # (B,)
    return 1.0 - ratio.mean()


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Focal + ``dice(P_N, 1 - Y) + dice(P_A, Y)`` of one level's patch logits.

    Args:
        logits: (B, 2, h, w) patch logits on the patch grid (channel 0 normal, 1 anomalous).
        mask: (B, 1, H, W) ground truth in {0, 1}; the logits are upsampled (bilinear,
            align_corners=True) to (H, W) before the softmax.

    Returns:
        scalar tensor.
    """
    target = (mask.float() > 0.5).float()
    up = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=True)
    probs = torch.softmax(up, dim=1)  # (B, 2, H, W)
    y = target.reshape(probs.shape[0], *probs.shape[2:])  # (B, H, W)
    return focal_loss(probs, y) + dice_loss(probs[:, 0], 1.0 - y) + dice_loss(probs[:, 1], y)


def disentangle_loss(anchors: torch.Tensor) -> torch.Tensor:
    """``(mean over the batch of <T_N, T_A>)^2`` (spec 6; weighted by gamma = 0.1 in Stage 1).

    Args:
        anchors: (B, D, 2) per-image anchors or (D, 2) shared ones; column 0 normal, 1 anomalous.

    Returns:
        scalar tensor.
    """
    per_image = anchors.float().reshape(-1, *anchors.shape[-2:])  # (B, D, 2)
    dots = (per_image[..., 0] * per_image[..., 1]).sum(dim=-1)  # (B,)
    return dots.mean() ** 2


def classification_loss(global_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``det @ T`` (B, 2) against image labels (B,) in {0, 1}, no temperature."""
    return F.cross_entropy(global_logits.float(), labels.long().reshape(-1))
