"""The AA-CLIP network: a frozen open_clip CLIP with residual adapters and projection heads.

Pure ``nn.Module``: tensors in, NamedTuples out, no I/O. Spec sections 1-5.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import open_clip
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from aaclip_med.model.adapters import ResidualAdapter, mix_adapter
from aaclip_med.model.backbone import build_clip, resolve_config
from aaclip_med.model.config import AAClipConfig
from aaclip_med.model.heads import ProjectionHead
from aaclip_med.model.smoothing import level_maps_to_map
from aaclip_med.model.surgery import surgery_block_forward
from aaclip_med.prompts import DEFAULT_PROMPTS, PromptSet
from aaclip_med.scoring import combine_image_score

__all__ = ["AAClip", "ImageFeatures", "Prediction", "build_aaclip"]

logger = logging.getLogger(__name__)


class ImageFeatures(NamedTuple):
    """Output of :meth:`AAClip.encode_image`."""

    levels: list[torch.Tensor]  # per level (B, L, D), L2-normalised per patch
    global_feature: torch.Tensor  # (B, D): mean of normalised det-head patches (not re-normalised)


class Prediction(NamedTuple):
    """Output of :meth:`AAClip.predict` (raw values of spec section 5, no normalisation)."""

    anomaly_map: torch.Tensor  # (B, H, W) sum of the smoothed, upsampled level maps
    image_score: torch.Tensor  # (B,) industrial 0.5*max(map)+0.5*s_g, medical max(map)
    global_score: torch.Tensor  # (B,) s_g = (det @ T_A + 1) / 2
    map_max: torch.Tensor  # (B,) max of anomaly_map


class AAClip(nn.Module):
    """AA-CLIP on a frozen open_clip CLIP.

    Args:
        clip: an open_clip ``CLIP`` (ViT vision tower, built-in text tower), frozen by this class.
        config: a resolved :class:`AAClipConfig` (no ``None`` fields).
        prompts: the prompt ensemble used for text anchors.
    """

    def __init__(self, clip: nn.Module, config: AAClipConfig, prompts: PromptSet = DEFAULT_PROMPTS) -> None:
        super().__init__()
        self.config = config
        self.prompts = prompts
        self.clip = clip
        for param in self.clip.parameters():
            param.requires_grad_(False)
        self.clip.eval()
        self.tokenizer = open_clip.get_tokenizer(config.backbone)
        self.grad_checkpointing = False

        vision_width = clip.visual.conv1.out_channels
        text_width = clip.token_embedding.embedding_dim
        embed_dim = clip.visual.output_dim
        slope = config.leaky_slope
        self.text_adapters = nn.ModuleList(
            ResidualAdapter(text_width, slope) for _ in range(config.text_adapter_layers)
        )
        self.text_proj = ProjectionHead(text_width, embed_dim, activation=True, negative_slope=slope)
        self.image_adapters = nn.ModuleList(
            ResidualAdapter(vision_width, slope) for _ in range(config.image_adapter_layers)
        )
        self.seg_heads = nn.ModuleList(
            ProjectionHead(vision_width, embed_dim, config.head_activation, slope) for _ in config.levels
        )
        self.det_head = ProjectionHead(vision_width, embed_dim, config.det_head_activation, slope)
        self._anchor_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ bookkeeping
    @property
    def embed_dim(self) -> int:
        return self.clip.visual.output_dim

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.clip.visual.grid_size)

    def trainable_modules(self) -> dict[str, nn.Module]:
        """The modules that training updates, by name (the CLIP itself is never among them)."""
        return {
            "text_adapters": self.text_adapters,
            "text_proj": self.text_proj,
            "image_adapters": self.image_adapters,
            "seg_heads": self.seg_heads,
            "det_head": self.det_head,
        }

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """State of the trainable modules only (what checkpoints store)."""
        return {
            f"{name}.{key}": value
            for name, module in self.trainable_modules().items()
            for key, value in module.state_dict().items()
        }

    def load_adapter_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Load :meth:`adapter_state_dict` output; clears the anchor cache."""
        own = self.adapter_state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if strict and (missing or unexpected):
            msg = f"Adapter weights do not fit this network: missing {missing[:6]}, unexpected {unexpected[:6]}."
            raise ValueError(msg)
        for key, value in state.items():
            if key in own and own[key].shape != value.shape:
                msg = f"Adapter weight {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}."
                raise ValueError(msg)
        modules = self.trainable_modules()
        for name, module in modules.items():
            prefix = f"{name}."
            sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            module.load_state_dict(sub, strict=strict)
        self.clear_anchor_cache()

    def train(self, mode: bool = True) -> AAClip:
        """Train the adapters; the frozen CLIP stays in eval mode (no dropout, fixed statistics)."""
        super().train(mode)
        self.clip.eval()
        self.clear_anchor_cache()
        return self

    def clear_anchor_cache(self) -> None:
        self._anchor_cache.clear()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute block activations in backward to trade compute for memory."""
        self.grad_checkpointing = enable

    def _run_block(self, block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, attn_mask=attn_mask, use_reentrant=False)
        return block(x, attn_mask=attn_mask)

    # ------------------------------------------------------------------ text side
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        device = self.clip.token_embedding.weight.device
        return self.tokenizer(texts).to(device)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Adapted text features: blocks (first K_T adapted) -> ln_final -> EOT -> text_proj.

        Args:
            tokens: (N, context_length) token ids.

        Returns:
            (N, D) features, not normalised.
        """
        clip = self.clip
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast) + clip.positional_embedding.to(cast)  # (N, L, W)
        for index, block in enumerate(clip.transformer.resblocks):
            x = self._run_block(block, x, attn_mask=clip.attn_mask)
            if index < len(self.text_adapters):
                x = mix_adapter(x, self.text_adapters[index], self.config.text_lambda)
        x = clip.ln_final(x)
        eot = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # (N, W)
        return self.text_proj(eot)

    def compute_text_anchors(self, description: str) -> torch.Tensor:
        """Anchors ``T = [T_N, T_A]`` (D, 2) of one class description, with gradients if enabled.

        Each sentence is L2-normalised, each state's sentences are averaged, and the mean is
        L2-normalised again.
        """
        normal, anomalous = self.prompts.sentences(description)
        feats = F.normalize(self.encode_text(self.tokenize(normal + anomalous)), dim=-1)
        t_n = F.normalize(feats[: len(normal)].mean(dim=0), dim=-1)
        t_a = F.normalize(feats[len(normal) :].mean(dim=0), dim=-1)
        return torch.stack([t_n, t_a], dim=1)  # (D, 2)

    @torch.no_grad()
    def text_anchors(self, description: str) -> torch.Tensor:
        """Cached anchors (D, 2) of ``description``; they depend on the text side only."""
        cached = self._anchor_cache.get(description)
        if cached is None:
            cached = self.compute_text_anchors(description).detach().float()
            self._anchor_cache[description] = cached
        return cached

    # ------------------------------------------------------------------ image side
    def _vision_tokens(self, images: torch.Tensor, block_forward=None) -> list[torch.Tensor]:
        """Tokens (B, 1+L, W) after each tapped block, with the first K_I blocks adapted.

        Args:
            images: (B, 3, S, S).
            block_forward: ``f(block, x) -> x`` running one frozen block; the default runs the
                block itself (with gradient checkpointing when enabled). The fast inference path
                passes a fused-attention forward.
        """
        run = block_forward or self._run_block
        visual = self.clip.visual
        x = visual._embeds(images.to(visual.conv1.weight.dtype))  # (B, 1+L, W), ln_pre applied
        taps, last = [], self.config.levels[-1]
        for index, block in enumerate(visual.transformer.resblocks[:last]):
            x = run(block, x)
            if index < len(self.image_adapters):
                x = mix_adapter(x, self.image_adapters[index], self.config.image_lambda)
            if index + 1 in self.config.levels:
                taps.append(x)
        return taps

    def features_from_tokens(self, taps: list[torch.Tensor]) -> ImageFeatures:
        """Heads on the tapped tokens: per-level patch features and the global feature (spec 3)."""
        ln_post = self.clip.visual.ln_post
        patches = [ln_post(t[:, 1:]) for t in taps]  # class token dropped, (B, L, W)
        levels = [F.normalize(head(p), dim=-1) for head, p in zip(self.seg_heads, patches)]
        det = F.normalize(self.det_head(patches[-1]), dim=-1).mean(dim=1)  # (B, D)
        return ImageFeatures(levels=levels, global_feature=det)

    def encode_image(self, images: torch.Tensor) -> ImageFeatures:
        """Per-level patch features and the global feature (spec section 3).

        Args:
            images: (B, 3, S, S) CLIP-normalised images, S = config.image_size.
        """
        return self.features_from_tokens(self._vision_tokens(images))

    def surgery_features(self, images: torch.Tensor, chunk_size: int | None = None) -> list[torch.Tensor]:
        """Stage-1 image features per level from the frozen, un-adapted CLIP (spec section 7).

        ``chunk_size`` runs the frozen forward on that many images at a time: the per-image
        result is unchanged, but the activation peak no longer grows with the batch (Stage 1 runs
        this without gradients, so nothing needs to be kept between chunks).

        Blocks from the first level on use value-value attention; each level's patch tokens go
        through ln_post and CLIP's ``proj``, are L2-normalised, and the normalised plain CLIP image
        embedding is added (no re-normalisation). The plain and surgery paths share the blocks
        before the first level and the same frozen weights: no second CLIP copy.

        Returns:
            list of (B, L, D), one per level.
        """
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of images, got {chunk_size}.")
        if chunk_size is not None and images.shape[0] > chunk_size:
            parts = [self.surgery_features(chunk) for chunk in images.split(chunk_size)]
            return [torch.cat(level) for level in zip(*parts)]
        visual = self.clip.visual
        start = self.config.levels[0] - 1  # 0-based index of the first value-value block
        x = visual._embeds(images.to(visual.conv1.weight.dtype))
        for block in visual.transformer.resblocks[:start]:
            x = block(x)
        plain = x
        for block in visual.transformer.resblocks[start:]:
            plain = block(plain)
        pooled, _ = visual._pool(plain)
        global_emb = F.normalize(pooled @ visual.proj, dim=-1).unsqueeze(1)  # (B, 1, D)
        feats = []
        for index, block in enumerate(visual.transformer.resblocks[start:], start=start):
            x = surgery_block_forward(block, x)
            if index + 1 in self.config.levels:
                patch = F.normalize(visual.ln_post(x[:, 1:]) @ visual.proj, dim=-1)
                feats.append(patch + global_emb)
        return feats

    # ------------------------------------------------------------------ maps and scores
    def patch_logits(self, level_features: list[torch.Tensor], anchors: torch.Tensor) -> list[torch.Tensor]:
        """``logit_scale * f @ T`` per level, reshaped to the patch grid.

        Args:
            level_features: per level (B, L, D).
            anchors: (D, 2) shared by the batch or (B, D, 2) per image.

        Returns:
            per level (B, 2, g, g); channel 0 normal, 1 anomalous.
        """
        gh, gw = self.grid_size
        out = []
        for feats in level_features:
            anchors_t = anchors.to(feats.dtype)
            scores = self.config.logit_scale * (feats @ anchors_t)  # (B, L, 2)
            out.append(scores.transpose(1, 2).reshape(feats.shape[0], 2, gh, gw))  # (B, 2, g, g)
        return out

    def global_logits(self, global_feature: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """``det @ T`` (B, 2), the logits of the Stage-2 classification loss (no temperature)."""
        anchors_t = anchors.to(global_feature.dtype)
        if anchors_t.dim() == 2:
            return global_feature @ anchors_t
        return torch.einsum("bd,bdk->bk", global_feature, anchors_t)

    def anomaly_map(
        self, level_logits: list[torch.Tensor], domain: str, size: tuple[int, int], sum_first: bool = False
    ) -> torch.Tensor:
        """Spec section 5: per level ``(S_A + 1 - S_N) / 2``, Gaussian blur, bilinear upsample, sum.

        Args:
            level_logits: per level (B, 2, g, g).
            domain: ``medical`` or ``industrial`` (smoothing kernel).
            size: (H, W) of the map.
            sum_first: smooth all levels together and sum them on the patch grid, then upsample
                once. Bilinear upsampling is linear, so this is the same map up to float rounding
                and 4x less work at full size; the default keeps the reference order (upsample
                each level, then sum).

        Returns:
            (B, H, W) float32.
        """
        logits = torch.stack([t.float() for t in level_logits], dim=1)  # (B, n, 2, g, g)
        levels = (logits[:, :, 1] + 1.0 - logits[:, :, 0]) / 2.0  # (B, n, g, g)
        return level_maps_to_map(levels, domain, size, sum_first=sum_first)

    def predict_from_features(
        self, feats: ImageFeatures, anchors: torch.Tensor, domain: str, size: tuple[int, int], sum_first: bool = False
    ) -> Prediction:
        """Maps at ``size`` and image scores (spec section 5) from already encoded features.

        ``sum_first`` sums the smoothed level maps on the patch grid before one upsample (see
        :meth:`anomaly_map`); the fast path uses it, :meth:`predict` keeps the reference order.
        """
        amap = self.anomaly_map(self.patch_logits(feats.levels, anchors), domain, tuple(size), sum_first=sum_first)
        global_score = (self.global_logits(feats.global_feature, anchors)[:, 1].float() + 1.0) / 2.0
        map_max = amap.flatten(1).amax(dim=1)
        score = combine_image_score(map_max, global_score, domain)
        return Prediction(anomaly_map=amap, image_score=score, global_score=global_score, map_max=map_max)

    def predict(self, images: torch.Tensor, anchors: torch.Tensor, domain: str) -> Prediction:
        """Anomaly maps at input resolution and image scores (spec section 5).

        Args:
            images: (B, 3, S, S) CLIP-normalised.
            anchors: (D, 2) or (B, D, 2) text anchors.
            domain: ``medical`` or ``industrial`` (smoothing kernel and image-score rule).
        """
        return self.predict_from_features(self.encode_image(images), anchors, domain, tuple(images.shape[-2:]))


def build_aaclip(config: AAClipConfig | None = None, prompts: PromptSet = DEFAULT_PROMPTS) -> AAClip:
    """Resolve ``config`` (presets / depth scaling), build and load the CLIP, wrap it in :class:`AAClip`."""
    resolved = resolve_config(config or AAClipConfig())
    logger.info(
        "AA-CLIP on %s at %d px: levels %s, K_I=%d, K_T=%d, weights %s",
        resolved.backbone,
        resolved.image_size,
        list(resolved.levels),
        resolved.image_adapter_layers,
        resolved.text_adapter_layers,
        resolved.pretrained,
    )
    return AAClip(build_clip(resolved), resolved, prompts)
