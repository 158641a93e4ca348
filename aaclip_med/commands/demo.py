"""``aaclip-med demo``: sample data -> inference -> NIfTI overlays, PNG blends -> evaluation report.

What ``make demo`` runs. Without trained adapters and pretrained CLIP weights the numbers mean
nothing; the command then says so loudly, and so do the report and SUMMARY.md.
"""

from __future__ import annotations

import argparse
import logging
import warnings

from aaclip_med.arguments import INFERENCE_PRECISIONS, add_model_arguments, check_model_arguments
from aaclip_med.demo.settings import DEMO_BACKBONE, DEMO_IMAGE_SIZE, SIZES

__all__ = ["add_arguments", "run"]

_RULE = "!" * 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder; nothing is written elsewhere")
    parser.add_argument("--size", choices=list(SIZES), default="full", help="sample size: 'full' (44) or 'small' (16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and of untrained weights")
    parser.add_argument("--offline", action="store_true", help="never try to download CLIP weights")
    parser.add_argument("--protocol", choices=("deployment", "paper"), default="deployment",
                        help="evaluation protocol (paper: per-class test-set min-max, benchmarks only)")
    parser.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                        help="inference precision (auto: bf16/fp16 where the device runs it natively, else fp32)")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    add_model_arguments(parser, default_backbone=DEMO_BACKBONE, default_image_size=DEMO_IMAGE_SIZE,
                        default_backbone_weights="the file named by $AACLIP_MED_CLIP_WEIGHTS, else a copy in open_clip's "
                                                 "cache, else a download unless --offline, else random")


def _banner(lines: list[str]) -> None:
    print(_RULE)
    for line in lines:
        print(f"!!! {line}")
    print(_RULE)


def _quiet_optional_decoder_notices() -> None:
    """MONAI announces a missing GPU DICOM decoder for every file read; it changes nothing here."""
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
    warnings.filterwarnings("ignore", message=".*has RANDOM weights.*")  # the demo prints its own banner


def run(args: argparse.Namespace) -> int:
    check_model_arguments(args, default_backbone=DEMO_BACKBONE)  # before the sample is written
    from aaclip_med.demo.pipeline import RANDOM_BANNER, UNTRAINED_NOTE, DemoSettings, run_demo

    _quiet_optional_decoder_notices()
    settings = DemoSettings(size=args.size, seed=args.seed, backbone=args.backbone, image_size=args.image_size,
                            backbone_weights=args.backbone_weights, weights=args.weights, offline=args.offline,
                            protocol=args.protocol, device=args.device, precision=args.precision,
                            batch_size=args.batch_size)
    result = run_demo(args.out, settings)
    print(f"\naaclip-med demo finished in {result.seconds['total']:.0f} s "
          f"({result.backbone} at {result.image_size} px; weights: {result.weights.reason})")
    if result.random_weights:
        _banner([RANDOM_BANNER, f"Why: {result.weights.reason}.", "Get CLIP weights: see docs/getting-started.md (--backbone-weights FILE or "
                 "AACLIP_MED_CLIP_WEIGHTS)."])
    if not result.trained_adapters:
        print(f"note: {UNTRAINED_NOTE}")
    print(f"sample data:     {result.manifest.parent}")
    print(f"NIfTI overlays:  {len(result.overlays)} in {result.out_dir / 'overlays'}")
    for path in result.overlays:
        print(f"                 {path}")
    print(f"PNG blends:      {len(result.blends)} in {result.out_dir / 'overlays'} (<class>/<case>_blend.png)")
    print(f"scores:          {result.out_dir / 'overlays'}/<class>/ and {result.out_dir / 'predictions' / 'predictions.jsonl'}")
    print(f"report:          {result.report_html}")
    print(f"figures:         {', '.join(str(p) for p in result.figures)}")
    print(f"summary:         {result.out_dir / 'SUMMARY.md'}")
    _print_references(result.references, result.random_weights)
    return 0


def _print_references(means: dict, random_weights: bool) -> None:
    """Zero-shot vs reference memory, side by side (the same held-out records)."""
    if not means:
        return
    print("\nreference memory (the sample's normals; held-out records):   pixel AUROC   image AUROC")
    for name, mean in means.items():
        cells = [("-" if mean.get(k) is None else f"{mean[k]:.3f}") for k in ("pixel_auroc", "image_auroc")]
        print(f"  {name:<58}{cells[0]:>13}{cells[1]:>14}")
    if random_weights:
        print("  random weights are not CLIP: the zero-shot numbers mean nothing; the memory compares patch features")
