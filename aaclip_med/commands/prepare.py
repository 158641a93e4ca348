"""``aaclip-med prepare DATASET ROOT --out MANIFEST``: a manifest for a known dataset layout."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

__all__ = ["add_arguments", "run", "check_masks"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="layout: mvtec, visa, btad, mpdd, bmad, polyp, folder, cohort")
    parser.add_argument("root", help="dataset root folder (manifest paths are relative to it)")
    parser.add_argument("--out", required=True, help="manifest file to write (JSON lines)")
    parser.add_argument("--split", default=None,
                        help="split of the layout (default test; VisA's test split is also AA-CLIP's training set; "
                             "train; valid for bmad)")
    parser.add_argument("--class-name", default=None, help="class name for single-class layouts")
    parser.add_argument("--shot", type=int, default=None,
                        help="keep k samples per class: half normal, half anomalous (all k of one label when "
                             "a class has only one, e.g. polyp sets)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-shot draw")
    parser.add_argument("--check-masks", action="store_true",
                        help="read every mask with the mask rule of training and evaluation and report empty ones "
                             "and anomalous records without a mask")


def check_masks(records: list[dict], root: Path) -> dict:
    """Read every record's mask as training and evaluation read it (:func:`aaclip_med.data.masks.read_mask`).

    Returns:
        {"masks": files read, "anomalous_pixels": total, "empty": image paths of anomalous records
        whose mask holds no anomalous pixel, "missing": those of anomalous records without a mask}.
    """
    from aaclip_med.data.masks import read_mask

    summary = {"masks": 0, "anomalous_pixels": 0, "empty": [], "missing": []}
    for record in records:
        if not record.get("mask_path"):
            if record["label"]:
                summary["missing"].append(record["image_path"])
            continue
        pixels = int(read_mask(root / record["mask_path"], record.get("slice_index")).sum())
        summary["masks"] += 1
        summary["anomalous_pixels"] += pixels
        if record["label"] and not pixels:
            summary["empty"].append(record["image_path"])
    for path in summary["empty"]:
        logger.warning("anomalous image %s has an empty mask (no pixel non-zero, or > 127 in a JPEG)", path)
    for path in summary["missing"]:
        logger.warning("anomalous image %s has no mask (no mask_path): pixel metrics take it as all normal", path)
    return summary


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
    anomalous = sum(1 for r in records if r["label"])
    print(f"wrote {len(records)} records of {len(classes)} classes ({anomalous} anomalous) to {path}")
    if args.check_masks:
        summary = check_masks(records, Path(args.root))
        print(f"masks: {summary['masks']} read, {summary['anomalous_pixels']} anomalous pixels, "
              f"{len(summary['empty'])} anomalous image(s) with an empty mask, "
              f"{len(summary['missing'])} without a mask")
    return 0
