"""``aaclip-med references build``: a reference memory of normal patches for ``infer --references``.

Thin layer over :func:`aaclip_med.adaptation.build_references`: the inputs (files, folders, DICOM
series, NIfTI volumes, or the label-0 lines of a manifest) are read with the same model and
preprocessing options as ``infer``, and the memory is written to one ``.safetensors`` file.
Paths and options are checked before torch is imported. User guide: docs/reference-memory.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aaclip_med.arguments import (
    INFERENCE_PRECISIONS,
    add_model_arguments,
    add_progress_argument,
    check_model_arguments,
    check_paths,
    descriptions_from_args,
    finite_float,
    fraction,
    model_from_args,
    slice_range,
)
from aaclip_med.inference.options import SLICE_AXES, InferenceOptions
from aaclip_med.keys import DOMAINS
from aaclip_med.presets import AUTO, modality_choices
from aaclip_med.units import in_mb

__all__ = ["add_arguments", "run", "DEFAULT_MAX_MB"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_MB = 256.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="build a reference memory from normal scans",
                           formatter_class=parser.formatter_class)
    build.add_argument("inputs", nargs="*", metavar="INPUT",
                       help="normal images, DICOM series, NIfTI volumes, or folders of them")
    build.add_argument("--out", required=True, metavar="FILE", help="the memory file to write (.safetensors)")
    build.add_argument("--manifest", help="JSON-lines manifest of normal records (label 0) instead of INPUTs")
    build.add_argument("--dataset-root", help="root of the manifest's relative paths (default: the manifest's folder)")
    build.add_argument("--max-mb", type=finite_float, default=DEFAULT_MAX_MB, metavar="MB",
                       help="size bound of the memory (float16 features, all classes and levels); a greedy "
                            "k-center coreset keeps it under this")
    data = build.add_argument_group("inputs (as in 'aaclip-med infer')")
    data.add_argument("--modality", choices=modality_choices(), default=AUTO, metavar="PRESET",
                      help=f"preprocessing preset: {', '.join(modality_choices())}")
    data.add_argument("--domain", choices=DOMAINS, help="default: photo -> industrial, else medical")
    data.add_argument("--class-name", help="class of the INPUTs (default: the --description text if given, else "
                                           "'scan'); a manifest's records carry their own")
    data.add_argument("--description", help="class description text (overrides the registries)")
    data.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    defaults = InferenceOptions().slices
    data.add_argument("--slice-axis", choices=[str(axis) for axis in SLICE_AXES], default=str(defaults.axis),
                      help="axis volumes are cut along")
    data.add_argument("--slice-range", type=slice_range, default=None, metavar="START:STOP",
                      help="only slices START..STOP-1 (default: all)")
    data.add_argument("--min-foreground", type=fraction, default=defaults.min_foreground, metavar="FRACTION",
                      help="volume slices with less foreground are left out of the memory")
    run_group = build.add_argument_group("execution")
    run_group.add_argument("--precision", choices=INFERENCE_PRECISIONS, default="auto",
                           help="as in infer; use the precision inference will run with")
    run_group.add_argument("--batch-size", type=int, default=8, help="slices per forward pass")
    run_group.add_argument("--seed", type=int, default=0,
                           help="seed of the coreset and of the untrained adapters (without --weights)")
    add_progress_argument(run_group)
    add_model_arguments(build)


def _check(args: argparse.Namespace) -> None:
    if bool(args.inputs) == bool(args.manifest):
        raise ValueError("give normal INPUT files/folders or --manifest FILE (one of them)")
    for item in args.inputs:
        if not Path(item).exists():
            raise FileNotFoundError(f"input {item}: no such file or folder")
    check_paths(manifest=args.manifest, dataset_root=args.dataset_root)
    if not args.max_mb > 0:
        raise ValueError(f"--max-mb must be a positive number of MB, got {args.max_mb:g}")
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the memory file to write, e.g. refs.safetensors")
    if out.suffix != ".safetensors":
        raise ValueError(f"--out {out}: the memory is a .safetensors file; name it e.g. {out.with_suffix('.safetensors').name}")
    check_model_arguments(args)


def _classes(args: argparse.Namespace, slice_options) -> dict:
    """class name -> (description, lazy reference slices)."""
    from aaclip_med.adaptation.sources import case_references, manifest_references, normal_records
    from aaclip_med.data.manifest import manifest_descriptions, read_manifest
    from aaclip_med.inference import discover_cases
    from aaclip_med.keys import Keys
    from aaclip_med.prompts import resolve_description

    descriptions = descriptions_from_args(args.descriptions)
    if args.manifest:
        descriptions = manifest_descriptions(args.manifest, descriptions)
        records = normal_records(read_manifest(args.manifest), args.manifest)
        root = Path(args.dataset_root) if args.dataset_root else Path(args.manifest).parent
        names = sorted({str(r[Keys.CLASS_NAME]) for r in records})
        return {name: (args.description or resolve_description(name, descriptions),
                       manifest_references([r for r in records if str(r[Keys.CLASS_NAME]) == name], root, args.modality))
                for name in names}
    cases = discover_cases(args.inputs)
    if not cases:
        raise ValueError(f"no images, DICOM series or NIfTI volumes found in {', '.join(args.inputs)}")
    name = args.class_name or args.description or "scan"
    description = args.description or resolve_description(name, descriptions)
    return {name: (description, case_references(cases, slice_options, args.modality))}


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from aaclip_med.adaptation import build_references, save_references
    from aaclip_med.identity import memory_identity
    from aaclip_med.inference import Predictor, SliceOptions
    from aaclip_med.inference.run_info import run_record

    start, stop = args.slice_range or (0, None)
    axis = int(args.slice_axis) if args.slice_axis.isdigit() else args.slice_axis
    slice_options = SliceOptions(axis=axis, start=start, stop=stop, min_foreground=args.min_foreground)
    torch.manual_seed(args.seed)
    model = model_from_args(args)
    predictor = Predictor(model, args.modality, args.domain, args.batch_size, args.precision, args.device,
                          progress=not args.no_progress)
    identity = memory_identity(run_record(model, args.weights, {}), axis)
    bank = build_references(predictor, _classes(args, slice_options), args.max_mb, identity, args.seed, args.domain)
    path = save_references(bank, args.out)
    for memory in bank.classes.values():
        print(f"{memory.class_name}: kept {memory.patches_kept} of {memory.patches_seen} patches per level "
              f"from {memory.slices} slice(s)")
    print(f"reference memory ({in_mb(bank.nbytes):.1f} MB): {path}")
    return 0
