"""``aaclip-med sample DIR``: write the bundled multi-modality sample data set with exact masks."""

from __future__ import annotations

import argparse

from aaclip_med.demo.settings import SIZES

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="DIR", help="output folder (created, or empty); the manifest is DIR/manifest.jsonl")
    parser.add_argument("--size", choices=list(SIZES), default="full",
                        help="'full' (44 slices/images, the demo) or 'small' (16, for tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic anomalies (same seed, same bytes)")
    parser.add_argument("--force", action="store_true",
                        help="replace a non-empty DIR whole (everything in it is deleted first)")


def run(args: argparse.Namespace) -> int:
    from aaclip_med.demo.sample import generate_sample

    manifest = generate_sample(args.out, size=args.size, seed=args.seed, force=args.force)
    print(f"sample data: {manifest.parent}")
    print(f"manifest:    {manifest}")
    print(f"classes:     {manifest.parent / 'descriptions.json'} (class -> prompt description)")
    return 0
