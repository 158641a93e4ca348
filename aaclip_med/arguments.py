"""Command-line options shared by the ``aaclip-med`` commands and the MONAI Deploy app, declared once,
and the checks that run before anything heavy.

Everything at module level here is standard library only: ``aaclip-med CMD --help`` and argument
errors must answer without importing torch, MONAI or open_clip, and a wrong path must be reported
before a model is built. The network the model options describe is a
:class:`~aaclip_med.networks.NetworkChoice` (:func:`network_from_args`), checked and built there.
"""

from __future__ import annotations

import argparse
import json
import math
from importlib import resources
from pathlib import Path

from aaclip_med.export.choice import AUTO_ENGINE, engine_choices
from aaclip_med.export.registry import TORCH_ENGINE
from aaclip_med.inference.options import (
    DEFAULT_REFERENCE_WEIGHT,
    PMAP_VALUES,
    REFERENCE_SEARCHES,
    SLICE_AXES,
    InferenceOptions,
    SliceOptions,
)
from aaclip_med.keys import DOMAINS
from aaclip_med.networks import PAPER_BACKBONE, NetworkChoice
from aaclip_med.precision import INFERENCE_PRECISIONS, PRECISIONS
from aaclip_med.presets import AUTO, modality_choices

__all__ = [
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "slice_range",
    "add_engine_arguments",
    "add_inference_arguments",
    "add_model_arguments",
    "add_progress_argument",
    "check_model_arguments",
    "check_paths",
    "descriptions_from_args",
    "finite_float",
    "fraction",
    "inference_options_from_args",
    "model_from_args",
    "network_from_args",
    "PAPER_BACKBONE",
]


def finite_float(text: str) -> float:
    """argparse type: a finite number (NaN and infinities are refused)."""
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from err
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], got {text!r}")
    return value


def _preset_sizes() -> dict[str, int]:
    folder = resources.files("aaclip_med").joinpath("configs", "backbones")
    sizes = {}
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            sizes[item.name[: -len(".json")]] = int(json.loads(item.read_text(encoding="utf-8"))["image_size"])
    return dict(sorted(sizes.items()))


def add_model_arguments(parser: argparse.ArgumentParser, default_backbone: str = PAPER_BACKBONE,
                        default_image_size: int | None = None,
                        default_backbone_weights: str = "recorded in --weights, else the preset's tag, downloaded "
                                                        "when online") -> None:
    """``--weights``, ``--backbone``, ``--image-size``, ``--backbone-weights``, ``--quick-gelu``, ``--device``.

    Args:
        parser: the subcommand's parser.
        default_backbone: the backbone this command builds without ``--weights`` (shown in --help).
        default_image_size: its input size when it is not the backbone preset's (the demo's 224).
        default_backbone_weights: what the command does without ``--backbone-weights`` (for --help).
    """
    sizes = ", ".join(f"{name} {size}" for name, size in _preset_sizes().items())
    size_default = f"{default_image_size} for {default_backbone}, else " if default_image_size else ""
    group = parser.add_argument_group("model")
    group.add_argument("--weights", metavar="FILE",
                       help="trained AA-CLIP adapters: a .safetensors file written by 'aaclip-med train', or "
                            "converted from the authors' .pth files by 'aaclip-med import-weights' "
                            "(default: none, untrained adapters)")
    group.add_argument("--backbone", default=None,
                       help=f"open_clip model name (default: the one recorded in --weights, else {default_backbone}; "
                            "'aaclip-tiny' for smoke tests)")
    group.add_argument("--image-size", type=int, default=None, metavar="PX",
                       help="input side in pixels, a multiple of the backbone's patch size (default: the size recorded "
                            f"in --weights, else {size_default}the backbone preset's: {sizes})")
    group.add_argument("--backbone-weights", default=None, metavar="FILE|TAG",
                       help="CLIP weights: a local file (e.g. ViT-L-14-336px.pt), an open_clip tag, or 'random' "
                            f"(default: {default_backbone_weights})")
    group.add_argument("--quick-gelu", action="store_true", help="QuickGELU activations (off in the paper's runs)")
    group.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--model``: run a graph written by ``aaclip-med export`` instead of building the network."""
    group = parser.add_argument_group("exported graph")
    group.add_argument("--engine", choices=engine_choices(), default=AUTO_ENGINE,
                       help="what runs the network: auto (default: the fastest engine for the precision on this "
                            "machine, by the rule in docs/export.md; run.json and the log say which and why), torch "
                            "(the network itself, or with --model the TorchScript export), onnxruntime or openvino "
                            "(an exported graph: given by --model, or exported into the graph cache)")
    group.add_argument("--graph-cache", metavar="DIR", default=None,
                       help="where --engine auto keeps the graphs it exports (default: $AACLIP_MED_CACHE, else "
                            "$XDG_CACHE_HOME/aaclip-med, else ~/.cache/aaclip-med); --engine torch uses none")
    group.add_argument("--model", metavar="DIR",
                       help="folder written by 'aaclip-med export' (model file + card.json); its card sets the "
                            "class, preset and domain, and options that differ from it are refused")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are shown only when the output is a terminal)")


def slice_range(text: str) -> tuple[int, int | None]:
    start, sep, stop = text.partition(":")
    try:
        bounds = (int(start) if start else 0, int(stop) if stop else None)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected START:STOP (e.g. 10:80, 10:), got {text!r}") from err
    if not sep or bounds[0] < 0 or (bounds[1] is not None and bounds[1] <= bounds[0]):
        raise argparse.ArgumentTypeError(f"expected START:STOP with 0 <= START < STOP, got {text!r}")
    return bounds


def add_inference_arguments(parser: argparse.ArgumentParser, dicom_flag: bool = True) -> None:
    """Every :class:`~aaclip_med.inference.InferenceOptions` setting as options, declared once for
    ``infer``, ``pacs run``/``pacs listen`` and the MONAI Deploy app (defaults are the options' own).

    Args:
        parser: the command's parser.
        dicom_flag: offer ``--dicom-out``; the PACS commands always write DICOM and leave it out.
    """
    defaults = InferenceOptions()
    data = parser.add_argument_group("inputs")
    data.add_argument("--modality", choices=modality_choices(), default=defaults.modality, metavar="PRESET",
                      help=f"preprocessing preset: {', '.join(modality_choices())}. '{AUTO}' picks one per source "
                           "(DICOM Modality tag; 8-bit images: photo; NIfTI: ct if Hounsfield air, else mri) and "
                           "logs why")
    data.add_argument("--domain", choices=DOMAINS, help="default: the preset's (photo -> industrial, else medical)")
    data.add_argument("--class-name", help="class of the inputs; picks the description and the calibration "
                                           "(default: the --description text if given, else 'scan')")
    data.add_argument("--description", help="class description text (overrides the registries)")
    data.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    volumes = parser.add_argument_group("volumes")
    volumes.add_argument("--slice-axis", choices=[str(axis) for axis in SLICE_AXES], default=str(defaults.slices.axis),
                         help="axis volumes are cut along ('acquisition': a DICOM series' stacking axis)")
    volumes.add_argument("--slice-range", type=slice_range, default=None, metavar="START:STOP",
                         help="only slices START..STOP-1 (default: all)")
    volumes.add_argument("--min-foreground", type=fraction, default=defaults.slices.min_foreground, metavar="FRACTION",
                         help="slices with less foreground (pixels above -500 HU for CT, above the volume minimum "
                              "otherwise) do not count in the case score")
    volumes.add_argument("--skip-empty", action="store_true",
                         help="do not predict slices under --min-foreground at all (faster; their map is 0)")
    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--threshold", type=finite_float, metavar="T",
                         help="raw map value for the binary mask / DICOM SEG (default: no mask)")
    if dicom_flag:
        outputs.add_argument("--dicom-out", action="store_true",
                             help="also write DICOM SEG and Parametric Map (highdicom)")
    outputs.add_argument("--pmap-values", choices=PMAP_VALUES, default=defaults.pmap_values,
                         help="values of the DICOM Parametric Map: 'probability' = each voxel's probability against the "
                              "normal references of the calibration, in [0, 1] (viewers such as OHIF show it as it "
                              "is); 'raw' = the raw map (its range in the mapping; viewers do not scale it). Default: "
                              "probability with --calibration, else raw (warned)")
    outputs.add_argument("--force", action="store_true",
                         help="recompute every case when OUT holds work done with other settings (without it such "
                              "a run is refused, naming them: network and weights, preset, domain, precision, "
                              "threshold, DICOM outputs and values, calibration, class and description, slicing, "
                              "reference memory and weight, engine)")
    calib = parser.add_argument_group("calibration")
    calib.add_argument("--calibration", metavar="FILE", help="calibration JSON to apply (z-scores, normal percentiles)")
    calib.add_argument("--allow-calibration-mismatch", action="store_true",
                       help="apply a calibration fitted with other weights, modality, domain or class (warned)")
    memory = parser.add_argument_group("reference memory (docs/reference-memory.md)")
    memory.add_argument("--references", metavar="FILE",
                        help="reference memory of normal scans ('aaclip-med references build'); the written maps "
                             "and scores combine it with the zero-shot map, in normal standard deviations")
    memory.add_argument("--reference-weight", type=fraction, default=None, metavar="W",
                        help="weight of the memory in the combined map: (1-W)*zero-shot + W*memory, each "
                             f"standardised on the references (1 = the memory alone; default {DEFAULT_REFERENCE_WEIGHT}); "
                             "only with --references")
    memory.add_argument("--reference-search", choices=REFERENCE_SEARCHES, default="auto",
                        help="nearest-neighbour search of the memory: auto (exact; the default), screen, gemm, or "
                             "approximate (a faiss index, pip install 'aaclip-med[ann]': faster, maps slightly off "
                             "where it misses a neighbour, recorded in run.json); only with --references")
    run_group = parser.add_argument_group("execution")
    run_group.add_argument("--precision", choices=INFERENCE_PRECISIONS, default=defaults.precision,
                           help="auto: bf16/fp16 where the device runs it natively, else fp32; int8: dynamic int8 "
                                "image tower (CPU)")
    run_group.add_argument("--batch-size", type=int, default=defaults.batch_size, help="slices per forward pass")
    run_group.add_argument("--workers", type=int, default=defaults.workers, help="DataLoader workers loading cases ahead")
    run_group.add_argument("--seed", type=int, default=0,
                           help="seed of the untrained adapters' initialisation (without --weights)")
    add_progress_argument(run_group)
    add_engine_arguments(parser)


def inference_options_from_args(args: argparse.Namespace, **changes) -> InferenceOptions:
    """The validated :class:`~aaclip_med.inference.InferenceOptions` the options of
    :func:`add_inference_arguments` describe, ``--calibration`` loaded (no torch; a bad value
    raises ValueError naming it).

    Args:
        args: the parsed arguments.
        changes: settings the command fixes, e.g. ``dicom=True`` for PACS.
    """
    check_paths(calibration=args.calibration, references=args.references)  # before any series or model work
    if args.reference_weight is not None and not args.references:
        raise ValueError(f"--reference-weight {args.reference_weight:g} needs --references FILE: it weighs the reference "
                         "memory in the maps, so alone it would change nothing")
    calibration = None
    if args.calibration:
        from aaclip_med.inference.calibration import load_calibration  # numpy, not torch

        calibration = load_calibration(args.calibration)
    start, stop = args.slice_range or (0, None)
    axis = int(args.slice_axis) if args.slice_axis.isdigit() else args.slice_axis
    options = InferenceOptions(
        modality=args.modality, domain=args.domain, class_name=args.class_name, description=args.description,
        descriptions=descriptions_from_args(args.descriptions), threshold=args.threshold,
        dicom=getattr(args, "dicom_out", False), pmap_values=args.pmap_values, calibration=calibration,
        allow_calibration_mismatch=args.allow_calibration_mismatch,
        references=args.references, reference_weight=args.reference_weight,
        reference_search=args.reference_search,
        slices=SliceOptions(axis=axis, start=start, stop=stop, min_foreground=args.min_foreground,
                            skip_empty=args.skip_empty),
        precision=args.precision, batch_size=args.batch_size, workers=args.workers, device=args.device,
        weights=args.weights, progress=not args.no_progress, force=args.force,
    )
    options = options.replace(**changes) if changes else options
    if options.dicom and calibration is not None:
        options.resolved_pmap_values(calibration)  # a calibration that cannot give probabilities is refused now
    return options


def check_paths(**paths: str | None) -> None:
    """Raise FileNotFoundError naming the option of the first given path that does not exist."""
    for option, value in paths.items():
        if value and not Path(value).exists():
            raise FileNotFoundError(f"--{option.replace('_', '-')} {value}: no such file or folder")


def network_from_args(args: argparse.Namespace, default_backbone: str = PAPER_BACKBONE) -> NetworkChoice:
    """The :class:`~aaclip_med.networks.NetworkChoice` of the options of :func:`add_model_arguments`
    (and :func:`add_engine_arguments`, where the command has them)."""
    return NetworkChoice(weights=args.weights, backbone=args.backbone, image_size=args.image_size,
                         backbone_weights=args.backbone_weights, quick_gelu=args.quick_gelu,
                         model=getattr(args, "model", None), engine=getattr(args, "engine", None) or TORCH_ENGINE,
                         default_backbone=default_backbone, graph_cache=getattr(args, "graph_cache", None))


def check_model_arguments(args: argparse.Namespace, default_backbone: str = PAPER_BACKBONE) -> None:
    """Refuse model options that cannot work, before anything heavy is imported
    (:meth:`~aaclip_med.networks.NetworkChoice.check`)."""
    network_from_args(args, default_backbone).check()


def model_from_args(args: argparse.Namespace, for_training: bool = False, default_backbone: str = PAPER_BACKBONE,
                    options: InferenceOptions | None = None, several_classes: bool = False):
    """Build (or load) the network the arguments describe (run :func:`check_model_arguments` first).

    Args:
        args: parsed arguments of :func:`add_model_arguments`.
        for_training: untrained adapters are expected then, so no warning about them.
        default_backbone: the backbone built without ``--weights`` and ``--backbone``.
        options: the inference run's options, which ``--engine auto`` decides by.
        several_classes: the run scores several classes (a manifest run).
    """
    return network_from_args(args, default_backbone).build(for_training, options, several_classes)


def descriptions_from_args(value: str | None) -> dict[str, str]:
    """``--descriptions`` is a JSON file or inline JSON mapping class name -> description."""
    if not value:
        return {}
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"--descriptions {value!r} is neither a JSON file nor inline JSON: {err}") from err
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"--descriptions {value!r} must map class names to description strings.")
    return data
