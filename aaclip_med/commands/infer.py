"""``aaclip-med infer``: anomaly maps, overlays and scores for files, folders or a manifest.

Thin layer over :func:`aaclip_med.inference.run_inference`: the flags become one
:class:`~aaclip_med.inference.InferenceOptions`. Paths and options are checked before torch is
imported or the model is built. ``--calibrate-normals DIR`` first fits a calibration on normal
references and saves it as ``OUT/calibration.json`` (pass it later with ``--calibration``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aaclip_med.arguments import (
    add_inference_arguments,
    add_model_arguments,
    check_model_arguments,
    check_paths,
    inference_options_from_args,
    model_from_args,
)
from aaclip_med.files import check_output_folder

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files or folders (DICOM series found recursively)")
    parser.add_argument("--out", required=True, help="output folder (the only place written to)")
    parser.add_argument("--manifest", help="JSON-lines manifest: write a predictions folder for 'aaclip-med evaluate'")
    parser.add_argument("--dataset-root", help="root of the manifest's relative paths (default: the manifest's folder)")
    parser.add_argument("--calibrate-normals", metavar="DIR",
                        help="fit a calibration on normal references first (saved as OUT/calibration.json)")
    add_inference_arguments(parser)
    add_model_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    """Everything that can be checked without torch: refuse before building anything."""
    if not args.inputs and not args.manifest and not args.calibrate_normals:
        raise ValueError("give INPUT files/folders, --manifest FILE or --calibrate-normals DIR")
    if args.inputs and args.manifest:  # one would be ignored
        raise ValueError("give INPUT files/folders or --manifest FILE, not both")
    for item in args.inputs:
        if not Path(item).exists():
            raise FileNotFoundError(f"input {item}: no such file or folder")
    check_paths(manifest=args.manifest, dataset_root=args.dataset_root, calibration=args.calibration,
                calibrate_normals=args.calibrate_normals, references=args.references)
    if args.calibration and args.calibrate_normals:
        raise ValueError("give --calibration FILE or --calibrate-normals DIR, not both")
    check_output_folder(args.out)
    check_model_arguments(args)


def _fit_calibration(args: argparse.Namespace, options, model):
    from aaclip_med.identity import scoring_identity
    from aaclip_med.inference import Calibration, Predictor, fit_calibration, save_calibration
    from aaclip_med.inference.api import attach_references, references_record
    from aaclip_med.inference.run_info import run_record
    from aaclip_med.prompts import resolve_description

    predictor = Predictor(model, options.modality, options.domain, options.batch_size, options.precision,
                          options.device, progress=options.progress)
    description = options.description or resolve_description(options.resolved_class, options.descriptions)
    record = run_record(model, args.weights, references_record(options))
    attach_references(predictor, options, record, {options.resolved_class: description})  # fit on combined scores
    fitted = fit_calibration(predictor, [args.calibrate_normals], options.resolved_class, description)
    identity = scoring_identity(record)
    calibration = Calibration({options.resolved_class: fitted}, identity)
    path = save_calibration(calibration, Path(args.out) / "calibration.json")
    print(f"calibration fitted on {len(fitted.image_scores)} normal slice(s): {path}")
    return calibration


def _report(summary: dict, out: str) -> int:
    failed = summary["failed"]
    if summary.get("all_failed"):
        print(f"all {summary['total']} {'case' if summary['total'] == 1 else 'cases'} failed; nothing was written to {out}")
    else:
        print(f"done {summary['done']}, skipped {summary['skipped']}, failed {len(failed)} of {summary['total']} -> {out}")
    for item in failed:
        print(f"  failed: {item['path']}: {item['error']}")
    return 1 if failed else 0


def run(args: argparse.Namespace) -> int:
    _check(args)
    options = inference_options_from_args(args)  # a bad value is refused before torch is imported
    import torch

    from aaclip_med.distributed import check_device
    from aaclip_med.inference import discover_cases, run_inference
    from aaclip_med.inference.network import fill_options

    cases = discover_cases(args.inputs) if args.inputs else []
    torch.manual_seed(args.seed)
    check_device(args.device)  # before the model loads, not after
    model = model_from_args(args, options=options, several_classes=bool(args.manifest))
    options = fill_options(model, options)  # an exported graph: class, preset and domain default to its card's
    options.check_model(model)
    if args.calibrate_normals:
        options = options.replace(calibration=_fit_calibration(args, options, model))
        if not args.inputs and not args.manifest:
            return 0
    summary = run_inference(cases, args.out, model, options, manifest=args.manifest, dataset_root=args.dataset_root)
    return _report(summary, args.out)
