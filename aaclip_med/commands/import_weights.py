"""``aaclip-med import-weights``: convert the authors' public checkpoints to our adapter format."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-adapter", required=True, help="text_adapter.pth written by the authors' code")
    parser.add_argument("--image-adapter", required=True, help="image_adapter.pth written by the authors' code")
    parser.add_argument("--out", required=True, help="adapters file to write (.safetensors, + .json beside it)")
    parser.add_argument("--backbone", default="ViT-L-14-336", help="open_clip model the checkpoints were trained on")
    parser.add_argument("--image-size", type=int, default=None, help="input side (default: preset, 518)")
    parser.add_argument("--backbone-weights", default="random",
                        help="CLIP weights recorded in the new file (tag or path); 'random' skips loading them here")


def run(args: argparse.Namespace) -> int:
    from aaclip_med.model import AAClipConfig, load_public_checkpoints, save_adapters

    config = AAClipConfig(backbone=args.backbone, image_size=args.image_size, pretrained=args.backbone_weights)
    model = load_public_checkpoints(args.text_adapter, args.image_adapter, config)
    if args.backbone_weights == "random":
        # The CLIP was only needed to shape the adapters; record the paper's weights, not "random".
        model.config = model.config.replace(pretrained=None)
    path = save_adapters(model, args.out, extra={"imported_from": [args.text_adapter, args.image_adapter]})
    print(f"wrote {path} (use it with --weights)")
    return 0
