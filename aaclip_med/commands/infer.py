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

from aaclip_med.commands._common import (
    INFERENCE_PRECISIONS,
    add_engine_arguments,
    add_model_arguments,
    add_progress_argument,
    check_model_arguments,
    check_paths,
    descriptions_from_args,
    finite_float,
    fraction,
    model_from_args,
)
from aaclip_med.presets import AUTO, modality_choices

__all__ = ["add_arguments", "run", "options_from_args"]

logger = logging.getLogger(__name__)

_AXES = ("acquisition", "axial", "coronal", "sagittal", "0", "1", "2")
_MIN_FOREGROUND = 0.05  # = aaclip_med.inference.options.MIN_FOREGROUND (pinned by a test)


def _slice_range(text: str) -> tuple[int, int | None]:
    start, sep, stop = text.partition(":")
    try:
        bounds = (int(start) if start else 0, int(stop) if stop else None)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected START:STOP (e.g. 10:80, 10:), got {text!r}") from err
    if not sep or bounds[0] < 0 or (bounds[1] is not None and bounds[1] <= bounds[0]):
        raise argparse.ArgumentTypeError(f"expected START:STOP with 0 <= START < STOP, got {text!r}")
    return bounds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files or folders (DICOM series found recursively)")
    parser.add_argument("--out", required=True, help="output folder (the only place written to)")
    parser.add_argument("--manifest", help="JSON-lines manifest: write a predictions folder for 'aaclip-med evaluate'")
    parser.add_argument("--dataset-root", help="root of the manifest's relative paths (default: the manifest's folder)")
    data = parser.add_argument_group("inputs")
    data.add_argument("--modality", choices=modality_choices(), default=AUTO, metavar="PRESET",
                      help=f"preprocessing preset: {', '.join(modality_choices())}. 'auto' picks one per source "
                           "(DICOM Modality tag; 8-bit images: photo; NIfTI: ct if Hounsfield air, else mri) and "
                           "logs why")
    data.add_argument("--domain", choices=("medical", "industrial"), help="default: photo -> industrial, else medical")
    data.add_argument("--class-name", help="class of the inputs; picks the description and the calibration "
                                           "(default: the --description text if given, else 'scan')")
    data.add_argument("--description", help="class description text (overrides the registries)")
    data.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    volumes = parser.add_argument_group("volumes")
    volumes.add_argument("--slice-axis", choices=_AXES, default="acquisition",
                         help="axis volumes are cut along ('acquisition': a DICOM series' stacking axis)")
    volumes.add_argument("--slice-range", type=_slice_range, default=None, metavar="START:STOP",
                         help="only slices START..STOP-1 (default: all)")
    volumes.add_argument("--min-foreground", type=fraction, default=_MIN_FOREGROUND, metavar="FRACTION",
                         help="slices with less foreground (pixels above -500 HU for CT, above the volume minimum "
                              "otherwise) do not count in the case score")
    volumes.add_argument("--skip-empty", action="store_true",
                         help="do not predict slices under --min-foreground at all (faster; their map is 0)")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--threshold", type=finite_float, metavar="T",
                         help="raw map value for the binary mask / DICOM SEG (default: no mask)")
    outputs.add_argument("--dicom-out", action="store_true", help="also write DICOM SEG and Parametric Map (highdicom)")
    outputs.add_argument("--force", action="store_true",
                         help="recompute every case when OUT holds work done with other settings")
    calib = parser.add_argument_group("calibration")
    calib.add_argument("--calibration", metavar="FILE", help="calibration JSON to apply (z-scores, normal percentiles)")
    calib.add_argument("--calibrate-normals", metavar="DIR", help="fit a calibration on normal references first")
    calib.add_argument("--allow-calibration-mismatch", action="store_true",
                       help="apply a calibration fitted with other weights, modality, domain or class (warned)")
    run_group = parser.add_argument_group("execution")
    run_group.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                           help="auto: bf16/fp16 where the device runs it natively, else fp32; int8: dynamic int8 image tower (CPU)")
    run_group.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    run_group.add_argument("--workers", type=int, default=0, help="DataLoader workers loading cases ahead")
    run_group.add_argument("--seed", type=int, default=0,
                           help="seed of the untrained adapters' initialisation (without --weights)")
    add_progress_argument(run_group)
    add_model_arguments(parser)
    add_engine_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    """Everything that can be checked without torch: refuse before building anything."""
    if not args.inputs and not args.manifest and not args.calibrate_normals:
        raise ValueError("give INPUT files/folders, --manifest FILE or --calibrate-normals DIR")
    for item in args.inputs:
        if not Path(item).exists():
            raise FileNotFoundError(f"input {item}: no such file or folder")
    check_paths(manifest=args.manifest, dataset_root=args.dataset_root, calibration=args.calibration,
                calibrate_normals=args.calibrate_normals)
    if args.calibration and args.calibrate_normals:
        raise ValueError("give --calibration FILE or --calibrate-normals DIR, not both")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder")
    check_model_arguments(args)


def options_from_args(args: argparse.Namespace, calibration=None):
    """The :class:`~aaclip_med.inference.InferenceOptions` the flags describe."""
    from aaclip_med.inference import InferenceOptions, SliceOptions

    start, stop = args.slice_range or (0, None)
    axis = int(args.slice_axis) if args.slice_axis.isdigit() else args.slice_axis
    return InferenceOptions(
        modality=args.modality, domain=args.domain, class_name=args.class_name, description=args.description,
        descriptions=descriptions_from_args(args.descriptions), threshold=args.threshold, dicom=args.dicom_out,
        calibration=calibration, allow_calibration_mismatch=args.allow_calibration_mismatch,
        slices=SliceOptions(axis=axis, start=start, stop=stop, min_foreground=args.min_foreground,
                            skip_empty=args.skip_empty),
        precision=args.precision, batch_size=args.batch_size, workers=args.workers, device=args.device,
        weights=args.weights, progress=not args.no_progress, force=args.force,
    )


def _fit_calibration(args: argparse.Namespace, options, model):
    from aaclip_med.inference import Calibration, Predictor, fit_calibration, save_calibration
    from aaclip_med.inference.calibration import identity_from_record
    from aaclip_med.inference.run_info import run_record
    from aaclip_med.prompts import resolve_description

    predictor = Predictor(model, options.modality, options.domain, options.batch_size, options.precision,
                          options.device, progress=options.progress)
    description = options.description or resolve_description(options.resolved_class, options.descriptions)
    fitted = fit_calibration(predictor, [args.calibrate_normals], options.resolved_class, description)
    identity = identity_from_record(run_record(model, args.weights, {}))
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
    import torch

    from aaclip_med.inference import discover_cases, load_calibration, run_inference

    options = options_from_args(args, load_calibration(args.calibration) if args.calibration else None)
    cases = discover_cases(args.inputs) if args.inputs and not args.manifest else []
    torch.manual_seed(args.seed)
    model = model_from_args(args)
    if hasattr(model, "fill_options"):  # an exported graph: class, preset and domain default to its card's
        options = model.fill_options(options)
    options.check_model(model)
    if args.calibrate_normals:
        options = options.replace(calibration=_fit_calibration(args, options, model))
        if not args.inputs and not args.manifest:
            return 0
    summary = run_inference(cases, args.out, model, options, manifest=args.manifest, dataset_root=args.dataset_root)
    return _report(summary, args.out)
