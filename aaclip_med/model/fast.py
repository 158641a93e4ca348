"""Fast inference path of AA-CLIP: reduced precision, fused attention, batching, optional compile.

``AAClip.predict`` in fp32 stays the reference. This path computes the same quantities (spec
section 5) with:

- ``torch.inference_mode`` (no autograd bookkeeping);
- autocast of the vision blocks to bf16 on CPUs with native bf16 dot products (AVX512-BF16 / AMX,
  Arm BF16) and to bf16/fp16 on GPUs, while the heads, the patch logits and the maps stay in fp32:
  ``logit_scale`` = 100 multiplies every rounding error of ``f @ T``, and the heads are ~1 % of the
  FLOPs;
- fused attention: each open_clip block runs one packed QKV projection and
  ``scaled_dot_product_attention`` on (B, heads, L, head_dim) directly, with the block's own
  weights (nothing is copied or changed). ``nn.MultiheadAttention`` reaches SDPA too, but through
  sequence-first transposes, and its native fast path is skipped under autocast;
- chunked batching and an optional ``torch.compile`` of the vision tower.

Maps and scores are returned in float32.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from aaclip_med.model.aaclip import AAClip, ImageFeatures, Prediction
from aaclip_med.precision import autocast, resolve_precision

__all__ = ["FastPredictor", "fast_predict", "fused_block_forward"]

logger = logging.getLogger(__name__)


def _fusable(block: nn.Module) -> bool:
    """Whether ``block`` is an open_clip ResidualAttentionBlock with packed-QKV self-attention."""
    attn = getattr(block, "attn", None)
    return (
        isinstance(attn, nn.MultiheadAttention)
        and attn.batch_first
        and attn._qkv_same_embed_dim
        and attn.bias_k is None
        and not hasattr(block, "ln_1_kv")
    )


def fused_block_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An open_clip residual block with its attention as one QKV matmul + fused SDPA.

    Same result as ``block(x)`` (up to float rounding) for a batch-first block without mask.

    Args:
        block: open_clip ``ResidualAttentionBlock`` (see :func:`_fusable`).
        x: tokens (B, L, W).
    """
    attn = block.attn
    b, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)  # (B, L, 3W)
    qkv = qkv.view(b, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)  # (3, B, h, L, hd)
    out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, h, L, hd)
    out = out.transpose(1, 2).reshape(b, length, width)  # (B, L, W)
    x = x + block.ls_1(attn.out_proj(out))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


class FastPredictor:
    """Batched, reduced-precision inference of one :class:`AAClip` (weights shared, not copied).

    Args:
        model: the network; it is only read.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (autocast dtype of the vision blocks).
        compile: wrap the vision tower in ``torch.compile`` (first call compiles: minutes on ViT-L).
        fused_attention: use :func:`fused_block_forward` where the block allows it.
        batch_size: images per forward; larger inputs are split (None: all at once).
    """

    def __init__(
        self,
        model: AAClip,
        precision: str = "auto",
        compile: bool = False,
        fused_attention: bool = True,
        batch_size: int | None = None,
    ) -> None:
        self.model = model
        self.device = model.clip.visual.conv1.weight.device
        self.precision = resolve_precision(precision, self.device)
        self.fused_attention = fused_attention
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of images, got {batch_size}.")
        self.batch_size = batch_size
        self._tokens: Callable[[torch.Tensor], list[torch.Tensor]] = self._vision_tokens
        if compile:
            self._tokens = torch.compile(self._vision_tokens, dynamic=False)
        logger.info(
            "Fast path on %s: autocast %s, fused attention %s, compile %s",
            self.device,
            self.precision,
            fused_attention,
            compile,
        )

    def _block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return fused_block_forward(block, x) if self.fused_attention and _fusable(block) else block(x)

    def _vision_tokens(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Tokens (B, 1+L, W) after each tapped block, via the model's own loop with fused blocks."""
        return self.model._vision_tokens(images, block_forward=self._block)

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """As :meth:`AAClip.encode_image` (no gradients): blocks under autocast, heads in fp32."""
        with torch.inference_mode():
            with autocast(self.precision, self.device):
                taps = self._tokens(images.to(self.device, torch.float32))
            return self.model.features_from_tokens([t.float() for t in taps])

    def _predict_chunk(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        feats = self.encode_image(images)
        pred = self.model.predict_from_features(feats, anchors, domain, tuple(images.shape[-2:]))
        return Prediction(*(t.float() for t in pred))

    def __call__(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Maps (B, H, W) and scores (B,), all float32, for CLIP-normalised images (B, 3, S, S).

        Args:
            images: (B, 3, S, S).
            anchors: (D, 2) shared, or (B, D, 2) per image (e.g. ``model.text_anchors(desc)``).
            domain: ``medical`` or ``industrial``.
        """
        anchors = anchors.to(self.device, torch.float32)
        step = self.batch_size or max(1, images.shape[0])
        parts = []
        with torch.inference_mode():
            for start in range(0, images.shape[0], step):
                chunk_anchors = anchors if anchors.dim() == 2 else anchors[start : start + step]
                parts.append(self._predict_chunk(images[start : start + step], chunk_anchors, domain))
        return Prediction(*(torch.cat(field) for field in zip(*parts)))


def fast_predict(
    model: AAClip,
    images: torch.Tensor,
    anchors: torch.Tensor,
    domain: str,
    precision: str = "auto",
    compile: bool = False,
    batch_size: int | None = None,
) -> Prediction:
    """One-shot :class:`FastPredictor` call; keep a predictor instead when calling repeatedly."""
    predictor = FastPredictor(model, precision=precision, compile=compile, batch_size=batch_size)
    return predictor(images, anchors, domain)
