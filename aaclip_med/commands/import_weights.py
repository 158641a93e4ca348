"""``aaclip-med import-weights``: convert the authors' public checkpoints to our adapter format.

Only the two adapter files are read (safely: tensors only); no CLIP is built or loaded, so the
conversion takes seconds and needs neither the CLIP weights nor their memory.
"""

from __future__ import annotations

import argparse

from aaclip_med.arguments import PAPER_BACKBONE, check_paths

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-adapter", required=True, help="text_adapter.pth written by the authors' code")
    parser.add_argument("--image-adapter", required=True, help="image_adapter.pth written by the authors' code")
    parser.add_argument("--out", required=True, help="adapters file to write (.safetensors, + .json beside it)")
    parser.add_argument("--backbone", default=PAPER_BACKBONE, help="open_clip model the checkpoints were trained on")
    parser.add_argument("--image-size", type=int, default=None,
                        help="input side the adapters were trained at (default: the backbone preset's, 518 for "
                             f"{PAPER_BACKBONE})")
    parser.add_argument("--backbone-weights", default=None,
                        help="CLIP weights recorded in the new file, a tag or path (default: the backbone preset's "
                             "tag; 'aaclip-med infer --backbone-weights FILE' overrides it at load time)")


def run(args: argparse.Namespace) -> int:
    check_paths(text_adapter=args.text_adapter, image_adapter=args.image_adapter)
    from aaclip_med.model import AAClipConfig
    from aaclip_med.model.checkpoint import import_public_checkpoints

    config = AAClipConfig(backbone=args.backbone, image_size=args.image_size, pretrained=args.backbone_weights)
    path = import_public_checkpoints(args.text_adapter, args.image_adapter, args.out, config,
                                     extra={"imported_from": [args.text_adapter, args.image_adapter]})
    print(f"wrote {path} (use it with --weights)")
    return 0
