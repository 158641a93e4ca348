"""Arguments shared by several subcommands, and the checks that run before anything heavy.

Everything at module level here is standard library only: ``aaclip-med CMD --help`` and argument
errors must answer without importing torch, MONAI or open_clip, and a wrong path must be reported
before a model is built. The model itself is built in :func:`model_from_args` (heavy imports inside).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import math
import os
import struct
from importlib import resources
from pathlib import Path

from aaclip_med.precision import INFERENCE_PRECISIONS, PRECISIONS

__all__ = [
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "add_engine_arguments",
    "add_model_arguments",
    "add_progress_argument",
    "check_model_arguments",
    "check_paths",
    "descriptions_from_args",
    "finite_float",
    "fraction",
    "model_from_args",
    "read_adapter_header",
]

logger = logging.getLogger(__name__)

PAPER_BACKBONE = "ViT-L-14-336"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
_IMPORT_HINT = ("the authors' text_adapter.pth / image_adapter.pth are converted with 'aaclip-med import-weights "
                "--text-adapter text_adapter.pth --image-adapter image_adapter.pth --out adapters.safetensors'")


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


ENGINES = ("torch", "onnxruntime", "openvino")  # aaclip_med.inference.deployed.ENGINES (kept torch-free here)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and ``--model``: run a graph written by ``aaclip-med export`` instead of building the network."""
    group = parser.add_argument_group("exported graph")
    group.add_argument("--engine", choices=ENGINES, default="torch",
                       help="what runs the network: torch (the network itself, or with --model the TorchScript "
                            "export), onnxruntime or openvino (an exported graph given by --model)")
    group.add_argument("--model", metavar="DIR",
                       help="folder written by 'aaclip-med export' (model file + card.json); its card sets the "
                            "class, preset and domain, and options that differ from it are refused")


def _check_card_arguments(args: argparse.Namespace) -> None:
    """``--model``: the folder and card exist, and the model options given agree with the card."""
    card_path = Path(args.model) / "card.json"
    if not card_path.is_file():
        raise FileNotFoundError(f"--model {args.model}: no card.json (a folder written by 'aaclip-med export' holds one)")
    try:
        identity = json.loads(card_path.read_text(encoding="utf-8")).get("identity", {})
    except (json.JSONDecodeError, AttributeError) as err:
        raise ValueError(f"{card_path}: not a model card ({err})") from err
    given = {"--image-size": args.image_size, "--backbone": args.backbone}
    recorded = {"--image-size": identity.get("image_size"), "--backbone": identity.get("backbone")}
    for option, value in given.items():
        if value is not None and value != recorded[option]:
            raise ValueError(f"{option} {value} differs from the exported graph's {recorded[option]} ({card_path}); "
                             f"drop {option} or export the graph again")
    if args.weights and identity.get("weights_sha256") != _sha256(args.weights):
        raise ValueError(f"--weights {args.weights} are not the adapters the graph in {args.model} was exported with "
                         f"({identity.get('weights') or 'untrained adapters'}); drop --weights or export again")


def _sha256(path: str) -> str | None:
    if not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (they are shown only when the output is a terminal)")


def check_paths(**paths: str | None) -> None:
    """Raise FileNotFoundError naming the option of the first given path that does not exist."""
    for option, value in paths.items():
        if value and not Path(value).exists():
            raise FileNotFoundError(f"--{option.replace('_', '-')} {value}: no such file or folder")


def read_adapter_header(path: str | os.PathLike) -> dict:
    """The aaclip-med metadata of an adapters file, read from its safetensors header (no torch).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it is not a safetensors file (a .pth pickle, a zip), naming the way to convert it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path}: no such file ({_IMPORT_HINT})")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
        text = handle.read(length) if 0 < length <= size - 8 else b""
    try:
        header = json.loads(text.decode("utf-8")) if text[:1] == b"{" else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict):
        kind = "a PyTorch zip checkpoint" if head[:2] == b"PK" else "a pickle" if head[:1] == b"\x80" else "something else"
        msg = f"--weights {path} is not a safetensors adapters file (it looks like {kind}); {_IMPORT_HINT}"
        raise ValueError(msg)
    meta = header.get("__metadata__", {}).get("aaclip_med")
    if meta is None and path.with_suffix(".json").is_file():
        return json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    return json.loads(meta) if meta else {}


def _patch_size(backbone: str) -> int | None:
    """The backbone's patch size from its open_clip JSON config, found without importing open_clip."""
    own = resources.files("aaclip_med").joinpath("configs", "open_clip", f"{backbone}.json")
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    candidates = [own] + [Path(loc) / "model_configs" / f"{backbone}.json" for loc in locations]
    for candidate in candidates:
        if candidate.is_file():
            patch = json.loads(candidate.read_text(encoding="utf-8")).get("vision_cfg", {}).get("patch_size")
            return int(patch) if isinstance(patch, int) else None
    return None


def _check_image_size(image_size: int, backbone: str) -> None:
    if image_size < 1:
        raise ValueError(f"--image-size must be a positive number of pixels, got {image_size}")
    patch = _patch_size(backbone)
    if patch and image_size % patch:
        lower, upper = max(patch, image_size // patch * patch), (image_size // patch + 1) * patch
        msg = f"--image-size {image_size} is not a multiple of the patch size {patch} of {backbone}; use {lower} or {upper}"
        raise ValueError(msg)


def check_model_arguments(args: argparse.Namespace, default_backbone: str = PAPER_BACKBONE) -> None:
    """Refuse model options that cannot work, before anything heavy is imported.

    Raises:
        FileNotFoundError: ``--weights`` or a ``--backbone-weights`` file is missing.
        ValueError: ``--weights`` is not a safetensors file, ``--image-size`` is not a multiple of the
            patch size or differs from the size the adapters were trained at, ``--backbone``
            differs from the adapters'.
    """
    engine, model_dir = getattr(args, "engine", "torch"), getattr(args, "model", None)
    if engine != "torch" and not model_dir:
        raise ValueError(f"--engine {engine} runs an exported graph: give --model DIR (written by 'aaclip-med export')")
    if model_dir:
        _check_card_arguments(args)
        return
    weights = args.backbone_weights
    if weights and (os.sep in weights or weights.lower().endswith(_WEIGHT_SUFFIXES)) and not Path(weights).is_file():
        raise FileNotFoundError(f"--backbone-weights {weights}: no such file (give a local file, an open_clip tag such "
                                "as 'openai', or 'random')")
    backbone = args.backbone or default_backbone
    if args.weights:
        config = read_adapter_header(args.weights).get("config", {})
        recorded_backbone, recorded_size = config.get("backbone"), config.get("image_size")
        if args.backbone and recorded_backbone and args.backbone != recorded_backbone:
            raise ValueError(f"--backbone {args.backbone} differs from the backbone {recorded_backbone} of {args.weights}")
        if args.image_size and recorded_size and args.image_size != recorded_size:
            msg = (f"--image-size {args.image_size} conflicts with {args.weights}: its adapters were trained at "
                   f"{recorded_size} px and run at that size; drop --image-size or pass {recorded_size}")
            raise ValueError(msg)
        backbone = recorded_backbone or backbone
    if args.image_size is not None:
        _check_image_size(args.image_size, backbone)


def model_from_args(args: argparse.Namespace, for_training: bool = False, default_backbone: str = PAPER_BACKBONE):
    """Build (or load) the network the arguments describe (run :func:`check_model_arguments` first).

    Args:
        args: parsed arguments of :func:`add_model_arguments`.
        for_training: untrained adapters are expected then, so no warning about them.
        default_backbone: the backbone built without ``--weights`` and ``--backbone``.
    """
    if getattr(args, "model", None):  # an exported graph (add_engine_arguments)
        from aaclip_med.inference.deployed import DeployedModel

        return DeployedModel(args.model, engine=getattr(args, "engine", "torch") or "torch")
    from aaclip_med.model import AAClipConfig, build_aaclip, load_adapters

    if args.weights:
        model = load_adapters(args.weights, pretrained=args.backbone_weights)
        if args.backbone and args.backbone != model.config.backbone:
            msg = f"--backbone {args.backbone} differs from the backbone {model.config.backbone} of {args.weights}."
            raise ValueError(msg)
        return model
    if not for_training:
        logger.warning("No --weights given: the adapters are untrained (Xavier-initialised); maps are not AA-CLIP's.")
    config = AAClipConfig(
        backbone=args.backbone or default_backbone,
        image_size=args.image_size,
        pretrained=args.backbone_weights,
        quick_gelu=args.quick_gelu,
    )
    return build_aaclip(config)


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
