"""``aaclip-med export``: one graph from image to anomaly map (TorchScript, ONNX, OpenVINO), with its card.

The model options are those of ``infer`` (backbone, CLIP weights, adapters, image size); the class
(name or description), domain and preset are fixed at export: the graph folds the class's text
anchors in and takes only the image. ``--precision int8`` quantises the image tower's matmuls,
calibrated on ``--calibration-data`` (normal references), and reports how close int8 stays to fp32.
The formats are those of :data:`aaclip_med.export.registry.FORMATS`. See docs/export.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aaclip_med.arguments import (
    add_model_arguments,
    check_model_arguments,
    check_paths,
    descriptions_from_args,
    model_from_args,
)
from aaclip_med.export.folder import check_export_folder
from aaclip_med.export.registry import DEFAULT_OPSET, EXPORT_PRECISIONS, FORMATS, check_export
from aaclip_med.keys import DOMAINS, Domain
from aaclip_med.presets import AUTO, default_domain, modality_choices

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=list(FORMATS), help="what to write")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder (model file + card.json): new, empty, or an earlier export, which is "
                             "replaced")
    what = parser.add_argument_group("what the graph scores")
    what.add_argument("--class-name", help="class the graph scores (default: the --description text if given, else 'scan')")
    what.add_argument("--description", help="class description text (overrides the registries)")
    what.add_argument("--descriptions", help="JSON file or inline JSON: class name -> description")
    what.add_argument("--modality", choices=modality_choices(), default=AUTO, metavar="PRESET",
                      help="preprocessing preset the graph is meant for (recorded in the card; infer then uses it), "
                           "and of --calibration-data")
    what.add_argument("--domain", choices=DOMAINS,
                      help=f"smoothing kernel and score rule (default: the preset's, else {Domain.MEDICAL})")
    what.add_argument("--level-maps", action="store_true", help="also output the four level maps (B, 4, S, S)")
    int8 = " or ".join(name for name, spec in FORMATS.items() if spec.int8)
    onnx = ", ".join(name for name, spec in FORMATS.items() if spec.opset)
    how = parser.add_argument_group("graph")
    how.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32",
                     help=f"int8: static quantisation of the image tower's matmuls ({int8})")
    how.add_argument("--calibration-data", metavar="DIR", help="normal reference images/volumes for int8 calibration")
    how.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset ({onnx})")
    how.add_argument("--seed", type=int, default=0, help="seed of the untrained adapters' initialisation (without --weights)")
    add_model_arguments(parser)


def _check(args: argparse.Namespace) -> None:
    check_paths(calibration_data=args.calibration_data)
    check_export(args.format, args.precision, calibrated=bool(args.calibration_data))
    check_export_folder(args.out)
    check_model_arguments(args)


def _print_card(card: dict, out: str) -> None:
    identity = card["identity"]
    print(f"exported {card['precision']} {card['format']} graph of class {identity['class_name']!r} "
          f"({identity['domain']}, {identity['backbone']} at {identity['image_size']} px) -> {Path(out) / card['file']}")
    if card.get("int8"):
        report = card["int8"]
        spearman = report["score_spearman"]
        spearman = "not measured (needs 2 slices)" if spearman is None and report["images"] < 2 else spearman
        print(f"int8 vs fp32 on {report['images']} calibration slice(s): map Pearson {report['map_pearson']}, "
              f"score Spearman {spearman}, map max abs diff {report['map_max_abs_diff']:.4g}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from aaclip_med.export import export_model, reference_images
    from aaclip_med.inference import Predictor
    from aaclip_med.inference.options import DEFAULT_CLASS
    from aaclip_med.prompts import resolve_description

    torch.manual_seed(args.seed)
    args.device = "cpu"  # exporting traces on the CPU; the graph runs wherever its engine does
    model = model_from_args(args)
    class_name = args.class_name or args.description or DEFAULT_CLASS
    description = args.description or resolve_description(class_name, descriptions_from_args(args.descriptions))
    preset = None if args.modality == AUTO else args.modality
    domain = args.domain or (default_domain(preset) if preset else str(Domain.MEDICAL))
    images = None
    if args.precision == "int8":
        predictor = Predictor(model, args.modality, domain, device="cpu", precision="fp32")
        images = reference_images(predictor, [args.calibration_data])
    card = export_model(model, args.out, args.format, class_name=class_name, description=description, domain=domain,
                        preset=preset, weights=args.weights, level_maps=args.level_maps, precision=args.precision,
                        calibration_images=images, calibration_source=args.calibration_data, opset=args.opset)
    _print_card(card, args.out)
    return 0
