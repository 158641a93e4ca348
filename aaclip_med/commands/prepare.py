"""``aaclip-med prepare DATASET ROOT --out MANIFEST``: a manifest for a known dataset layout."""

from __future__ import annotations

import argparse

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="layout: mvtec, visa, btad, mpdd, bmad, polyp, folder, cohort")
    parser.add_argument("root", help="dataset root folder (manifest paths are relative to it)")
    parser.add_argument("--out", required=True, help="manifest file to write (JSON lines)")
    parser.add_argument("--split", default=None, help="split of the layout (e.g. test, train)")
    parser.add_argument("--class-name", default=None, help="class name for single-class layouts")
    parser.add_argument("--shot", type=int, default=None, help="keep k samples per class (half normal, half anomalous)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-shot draw")


def run(args: argparse.Namespace) -> int:
    from aaclip_med.data.builders import build_manifest
    from aaclip_med.data.kshot import sample_k_shot
    from aaclip_med.data.manifest import write_manifest

    options = {}
    if args.split:
        options["split"] = args.split
    if args.class_name:
        options["class_name"] = args.class_name
    records = build_manifest(args.dataset, args.root, **options)
    if args.shot:
        records = sample_k_shot(records, args.shot, seed=args.seed)
    path = write_manifest(records, args.out)
    classes = sorted({r["class_name"] for r in records})
    print(f"wrote {len(records)} records of {len(classes)} classes to {path}")
    return 0
