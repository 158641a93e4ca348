"""Analytic FLOP count of :meth:`AAClip.predict`, from the config alone (no model is built).

Convention: one multiply-add is 2 FLOPs, and only matrix products and convolutions are counted
(the convention of ``torch.utils.flop_counter.FlopCounterMode``); layer norms, softmax, GELU and
interpolation are a few percent of the work and memory-bound, so they are left out. The count is
what the benchmarks divide by time to get achieved GFLOP/s next to the machine's matmul peak.

ViT-L-14-336 at 518 px (37 x 37 patches + class token, 24 blocks of width 1024): about 1.04 TFLOP
per image, 97 % of it in the transformer blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import open_clip

from aaclip_med.model.backbone import resolve_config
from aaclip_med.model.config import AAClipConfig

__all__ = ["VisionDims", "count_predict_flops", "vision_dims"]


@dataclass(frozen=True)
class VisionDims:
    """The sizes of the vision tower that the FLOP count needs."""

    width: int  # token width W
    mlp_width: int  # hidden width of the block MLP
    patch_size: int  # side of a patch in pixels
    grid: int  # patches per side, image_size // patch_size
    embed_dim: int  # joint embedding size D (output of the seg/det heads)
    blocks_run: int  # blocks executed by predict: up to the deepest tapped level
    adapters: int  # K_I
    levels: int  # number of tapped levels (seg heads)

    @property
    def tokens(self) -> int:
        """Sequence length 1 + g^2 (class token plus patches)."""
        return 1 + self.grid * self.grid


def vision_dims(config: AAClipConfig) -> VisionDims:
    """Resolve ``config`` and read the vision sizes from the open_clip model config."""
    resolved = resolve_config(config)
    model_cfg = open_clip.get_model_config(resolved.backbone)
    vision = model_cfg["vision_cfg"]
    width = int(vision["width"])
    patch = int(vision["patch_size"])
    return VisionDims(
        width=width,
        mlp_width=int(width * float(vision.get("mlp_ratio", 4.0))),
        patch_size=patch,
        grid=resolved.image_size // patch,
        embed_dim=int(model_cfg["embed_dim"]),
        blocks_run=max(resolved.levels),
        adapters=resolved.image_adapter_layers,
        levels=len(resolved.levels),
    )


def _smoothing_flops(grid: int, ksize: int) -> int:
    # Separable blur on the reflect-padded grid: a (1, k) pass to (g + 2p, g), then (k, 1) to (g, g).
    padded = grid + 2 * (ksize // 2)
    return 2 * ksize * (padded * grid + grid * grid)


def count_predict_flops(config: AAClipConfig, batch: int = 1, smoothing_kernel: int = 9) -> dict[str, int]:
    """FLOPs of ``predict`` on ``batch`` images, by component.

    Args:
        config: the network config (``None`` fields are resolved from the backbone preset).
        batch: number of images.
        smoothing_kernel: Gaussian kernel size (9 medical, 7 industrial); it changes ~1e-6 of total.

    Returns:
        FLOPs per component (``patch_embed``, ``qkv``, ``attention``, ``out_proj``, ``mlp``,
        ``adapters``, ``heads``, ``logits``, ``smoothing``) and their sum under ``total``.
    """
    d = vision_dims(config)
    n, w, g2 = d.tokens, d.width, d.grid * d.grid
    per_block = {
        "qkv": 2 * n * w * 3 * w,
        "attention": 2 * 2 * n * n * w,  # q k^T and attn v, summed over heads (heads * head_dim = W)
        "out_proj": 2 * n * w * w,
        "mlp": 2 * 2 * n * w * d.mlp_width,
    }
    counts = {"patch_embed": 2 * g2 * 3 * d.patch_size**2 * w}
    counts.update({name: d.blocks_run * value for name, value in per_block.items()})
    counts["adapters"] = d.adapters * 2 * n * w * w
    counts["heads"] = (d.levels + 1) * 2 * g2 * w * d.embed_dim  # seg heads per level + det head
    counts["logits"] = d.levels * 2 * g2 * d.embed_dim * 2 + 2 * d.embed_dim * 2  # f @ T and det @ T
    counts["smoothing"] = d.levels * _smoothing_flops(d.grid, smoothing_kernel)
    counts = {name: batch * value for name, value in counts.items()}
    counts["total"] = sum(counts.values())
    return counts
