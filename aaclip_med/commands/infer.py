"""``aaclip-med infer``: anomaly maps, overlays and scores for files, folders or a manifest.

Thin layer over :func:`aaclip_med.inference.run_inference`; see that module for the output layout.
``--calibrate-normals DIR`` first fits a calibration on normal references and saves it as
``OUT/calibration.json`` (pass it later with ``--calibration``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from aaclip_med.commands._common import add_model_arguments, descriptions_from_args, model_from_args
from aaclip_med.precision import PRECISIONS

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)

_MODALITIES = ("ct", "mr", "mri", "oct", "endoscopy", "photo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files or folders (DICOM series found recursively)")
    parser.add_argument("--out", required=True, help="output folder (the only place written to)")
    parser.add_argument("--manifest", help="JSON-lines manifest: write a predictions dir for 'aaclip-med evaluate'")
    parser.add_argument("--dataset-root", help="root of the manifest's relative paths (default: its folder)")
    parser.add_argument("--modality", default="ct", help=f"preset: {', '.join(_MODALITIES)} or a ct-<window> preset")
    parser.add_argument("--domain", choices=("medical", "industrial"), help="default: photo -> industrial, else medical")
    parser.add_argument("--class-name", default="scan", help="class of the inputs (picks the description)")
    parser.add_argument("--description", help="class description text (overrides the registry)")
    parser.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    parser.add_argument("--threshold", type=float, help="raw map value for the binary mask / DICOM SEG")
    parser.add_argument("--dicom-out", action="store_true", help="also write DICOM SEG and Parametric Map (highdicom)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32, or bf16/fp16 autocast")
    parser.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers loading cases ahead")
    parser.add_argument("--seed", type=int, default=0, help="seed for building untrained/random parts identically")
    parser.add_argument("--calibration", help="calibration JSON to apply (z-scores, normal percentiles)")
    parser.add_argument("--calibrate-normals", metavar="DIR", help="fit a calibration on normal references first")
    add_model_arguments(parser)


def _calibration(args: argparse.Namespace, predictor_args: dict, model, description: str):
    from aaclip_med.inference import Predictor, fit_calibration, load_calibration, save_calibration
    from aaclip_med.inference.calibration import Calibration

    if args.calibrate_normals:
        predictor = Predictor(model, **predictor_args)
        fitted = fit_calibration(predictor, [args.calibrate_normals], args.class_name, description)
        calibration = Calibration({args.class_name: fitted}, {"backbone": model.config.backbone, "weights": args.weights})
        path = save_calibration(calibration, Path(args.out) / "calibration.json")
        logger.info("calibration fitted on %d normal slice(s), saved to %s", len(fitted.image_scores), path)
        return calibration
    return load_calibration(args.calibration) if args.calibration else None


def run(args: argparse.Namespace) -> int:
    from aaclip_med.inference import run_inference
    from aaclip_med.prompts import resolve_description

    if not args.inputs and not args.manifest and not args.calibrate_normals:
        raise ValueError("give INPUT files/folders, --manifest FILE or --calibrate-normals DIR")
    torch.manual_seed(args.seed)
    model = model_from_args(args)
    overrides = descriptions_from_args(args.descriptions)
    description = args.description or resolve_description(args.class_name, overrides)
    predictor_args = {"modality": args.modality, "domain": args.domain, "batch_size": args.batch_size,
                      "precision": args.precision, "device": args.device}
    calibration = _calibration(args, predictor_args, model, description)
    if not args.inputs and not args.manifest:
        return 0
    summary = run_inference(
        args.inputs, args.out, model, class_name=args.class_name, description=args.description,
        descriptions=overrides, manifest=args.manifest, dataset_root=args.dataset_root, threshold=args.threshold,
        dicom=args.dicom_out, calibration=calibration, workers=args.workers, weights=args.weights, **predictor_args,
    )
    failed = summary["failed"]
    print(f"done {summary['done']}, skipped {summary['skipped']}, failed {len(failed)} of {summary['total']} -> {args.out}")
    for item in failed:
        print(f"  failed: {item.get('path') or item.get('image_path')}: {item['error']}")
    return 1 if failed else 0
