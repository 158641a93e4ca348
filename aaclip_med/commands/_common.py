"""Arguments shared by several subcommands (model building), so every command spells them alike."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from aaclip_med.model import AAClip, AAClipConfig, build_aaclip, load_adapters

__all__ = ["add_model_arguments", "model_from_args", "descriptions_from_args"]

logger = logging.getLogger(__name__)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--weights", help="trained adapters (.safetensors written by aaclip-med train)")
    group.add_argument("--backbone", default=None, help="open_clip model name (default ViT-L-14-336; "
                       "'aaclip-tiny' for smoke tests)")
    group.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: preset, 518)")
    group.add_argument("--backbone-weights", default=None,
                       help="CLIP weights: open_clip tag, local file (e.g. ViT-L-14-336px.pt) or 'random'")
    group.add_argument("--quick-gelu", action="store_true", help="QuickGELU activations (off in the paper's runs)")
    group.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def model_from_args(args: argparse.Namespace, for_training: bool = False) -> AAClip:
    """Build (or load) the network the arguments describe.

    Args:
        args: parsed arguments of :func:`add_model_arguments`.
        for_training: untrained adapters are expected then, so no warning about them.
    """
    if args.weights:
        model = load_adapters(args.weights, pretrained=args.backbone_weights)
        if args.backbone and args.backbone != model.config.backbone:
            msg = f"--backbone {args.backbone} differs from the backbone {model.config.backbone} of {args.weights}."
            raise ValueError(msg)
        return model
    if not for_training:
        logger.warning("No --weights given: the adapters are untrained (Xavier-initialised); maps are not AA-CLIP's.")
    config = AAClipConfig(
        backbone=args.backbone or "ViT-L-14-336",
        image_size=args.image_size,
        pretrained=args.backbone_weights,
        quick_gelu=args.quick_gelu,
    )
    return build_aaclip(config)


def descriptions_from_args(value: str | None) -> dict[str, str]:
    """``--descriptions`` is a JSON file or inline JSON mapping class name -> description."""
    if not value:
        return {}
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--descriptions {value!r} is neither a JSON file nor inline JSON: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"--descriptions {value!r} must map class names to description strings.")
    return data
