"""Configuration of an AA-CLIP network: which backbone, which blocks are adapted, which are tapped.

The config travels with trained adapters (as JSON) so a checkpoint always rebuilds the same network.
This module imports only the standard library: the CLI checks sizes with it before torch is loaded.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["AAClipConfig", "check_image_size", "patch_size"]


@dataclass
class AAClipConfig:
    """Hyper-parameters of the network (spec sections 1-3).

    Fields left as ``None`` are filled from the backbone preset (``configs/backbones/<name>.json``)
    or, for backbones without a preset, scaled from the paper's 24-layer values to the depth of
    the backbone (see :func:`aaclip_med.model.backbone.resolve_config`).
    """

    backbone: str = "ViT-L-14-336"  # open_clip model name (or a name registered by this package)
    image_size: int | None = None  # side of the square input; 518 for the paper's backbone
    pretrained: str | None = None  # open_clip tag, local weights file, or "random"
    quick_gelu: bool = False  # spec 1: published numbers used nn.GELU, not QuickGELU
    text_adapter_layers: int | None = None  # K_T, adapters after text blocks 1..K_T
    image_adapter_layers: int | None = None  # K_I, adapters after vision blocks 1..K_I
    text_lambda: float = 0.1  # residual mixing ratio of text adapters
    image_lambda: float = 0.1  # residual mixing ratio of image adapters
    levels: tuple[int, ...] | None = None  # 1-based vision blocks whose tokens feed the patch heads
    head_activation: bool = False  # LeakyReLU after each seg head (public code's --relu)
    det_head_activation: bool = False  # LeakyReLU after the det (global) head (public --relu sets both)
    leaky_slope: float = 0.01  # slope of every LeakyReLU in adapters and heads
    logit_scale: float = 100.0  # S = logit_scale * f @ T (spec section 5)
    descriptions: dict[str, str] = field(default_factory=dict)  # class name -> description used

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary (tuples become lists)."""
        data = dataclasses.asdict(self)
        if data["levels"] is not None:
            data["levels"] = list(data["levels"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AAClipConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error so typos do not pass silently."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"Unknown AA-CLIP config keys {unknown}; valid keys are {sorted(known)}."
            raise ValueError(msg)
        values = dict(data)
        if values.get("levels") is not None:
            values["levels"] = tuple(int(v) for v in values["levels"])
        return cls(**values)

    def replace(self, **changes: Any) -> AAClipConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def patch_size(backbone: str) -> int | None:
    """The patch side of ``backbone`` in pixels, from its open_clip model config JSON (no torch).

    The package's own architectures (``configs/open_clip``) are looked up first, then open_clip's
    ``model_configs`` folder, found without importing open_clip. None when neither knows the name
    (the backbone loader then names the problem).
    """
    own = resources.files("aaclip_med").joinpath("configs", "open_clip", f"{backbone}.json")
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for candidate in [own, *(Path(loc) / "model_configs" / f"{backbone}.json" for loc in locations)]:
        if candidate.is_file():
            patch = json.loads(candidate.read_text(encoding="utf-8")).get("vision_cfg", {}).get("patch_size")
            return int(patch) if isinstance(patch, int) else None
    return None


def check_image_size(image_size: int, backbone: str) -> None:
    """Refuse an input side that is not a whole number of ``backbone``'s patches (the map grid would be cut).

    Raises:
        ValueError: naming the size, the patch size and the two nearest sizes that work.
    """
    if image_size < 1:
        raise ValueError(f"image size must be a positive number of pixels, got {image_size}")
    patch = patch_size(backbone)
    if patch and image_size % patch:
        nearest = sorted({image_size // patch * patch or patch, (image_size // patch + 1) * patch})
        msg = (f"image size {image_size} is not a multiple of the patch size {patch} of {backbone}; "
               f"use {' or '.join(map(str, nearest))}")
        raise ValueError(msg)
