"""Backbone presets (data in ``aaclip_med/configs/backbones``) and loading of the frozen CLIP.

``pretrained`` is an open_clip tag (downloaded when online), a local weights file (OpenAI TorchScript
``.pt`` archive or state dict, open_clip ``.bin``/``.pt``/``.safetensors``) or ``"random"`` for
smoke tests. Hospitals are often offline, so local files are first class and the offline failure
names the file to fetch and the argument to pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import socket
import threading
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import open_clip
import torch
from open_clip.model import resize_pos_embed

from aaclip_med.identity import is_random_weights
from aaclip_med.model.config import AAClipConfig, check_image_size

__all__ = [
    "BackboneWeightsError",
    "build_clip",
    "get_backbone_preset",
    "list_backbone_presets",
    "load_backbone_weights",
    "resolve_config",
]

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS = "random"
RANDOM_WEIGHTS_SEED = 0
# The paper's block indices and adapter depths, for a 24-layer vision / 12-layer text tower.
_PAPER_VISION_DEPTH = 24
_PAPER_LEVELS = (6, 12, 18, 24)
_PAPER_K_I = 6
_PAPER_TEXT_DEPTH = 12
_PAPER_K_T = 3
# the host open_clip downloads tagged weights from, and how long to wait for it before calling it offline
_HUB_HOST = "huggingface.co"
_PROBE_SECONDS = 3.0
_HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip's file name when a hub entry names none


class BackboneWeightsError(RuntimeError):
    """The CLIP weights could not be found, downloaded or read."""


def _preset_dir():
    return resources.files("aaclip_med").joinpath("configs", "backbones")


def list_backbone_presets() -> list[str]:
    """Names of the backbones that ship with a preset (any other open_clip ViT works too)."""
    return sorted(p.name[: -len(".json")] for p in _preset_dir().iterdir() if p.name.endswith(".json"))


def get_backbone_preset(name: str) -> dict[str, Any] | None:
    """A fresh copy of the preset for ``name``, or None when the backbone has no preset."""
    entry = _preset_dir().joinpath(f"{name}.json")
    if not entry.is_file():
        return None
    return json.loads(entry.read_text())


def _register_package_model(name: str) -> None:
    """Make an architecture shipped by this package (e.g. ``aaclip-tiny``) known to open_clip.

    Done lazily, on first use, so importing the package does not touch open_clip's registry.
    """
    if name in open_clip.list_models():
        return
    preset = get_backbone_preset(name) or {}
    rel = preset.get("open_clip_config")
    if rel is None:
        return
    cfg = resources.files("aaclip_med").joinpath("configs", rel)
    with resources.as_file(cfg) as path:
        open_clip.add_model_config(path)


def _check_known_model(name: str) -> None:
    _register_package_model(name)
    if name not in open_clip.list_models():
        msg = (
            f"Unknown backbone {name!r}. Use an open_clip model name (open_clip.list_models()), "
            f"e.g. one of the presets {list_backbone_presets()}."
        )
        raise ValueError(msg)


def _vision_depth(model_cfg: dict[str, Any]) -> int:
    return int(model_cfg["vision_cfg"]["layers"])


def _text_depth(model_cfg: dict[str, Any]) -> int:
    return int(model_cfg["text_cfg"].get("layers", _PAPER_TEXT_DEPTH))


def _scaled_levels(depth: int) -> tuple[int, ...]:
    # Same relative depths as 6/12/18/24 of 24; distinct and within 1..depth.
    levels = sorted({max(1, round(level * depth / _PAPER_VISION_DEPTH)) for level in _PAPER_LEVELS})
    return tuple(levels)


def resolve_config(config: AAClipConfig) -> AAClipConfig:
    """Fill the ``None`` fields of ``config`` from the backbone preset or by depth scaling.

    Every network is built from a resolved config (API, CLI, training, bundle), so the checks here
    (a ViT, depths in range, an input side that is a whole number of patches) hold for all of them.
    """
    _check_known_model(config.backbone)
    preset = get_backbone_preset(config.backbone) or {}
    model_cfg = open_clip.get_model_config(config.backbone)
    if model_cfg is None or "vision_cfg" not in model_cfg or "layers" not in model_cfg["vision_cfg"]:
        msg = f"Backbone {config.backbone!r} is not a ViT CLIP with a known depth; AA-CLIP needs a ViT."
        raise ValueError(msg)
    if isinstance(model_cfg["vision_cfg"]["layers"], (list, tuple)):
        msg = f"Backbone {config.backbone!r} is a ResNet CLIP; AA-CLIP needs a ViT (patch tokens)."
        raise ValueError(msg)
    vdepth, tdepth = _vision_depth(model_cfg), _text_depth(model_cfg)
    changes: dict[str, Any] = {}
    if config.image_size is None:
        changes["image_size"] = int(preset.get("image_size", model_cfg["vision_cfg"]["image_size"]))
    if config.pretrained is None:
        changes["pretrained"] = preset.get("pretrained", RANDOM_WEIGHTS)
    if config.levels is None:
        changes["levels"] = tuple(preset.get("levels", _scaled_levels(vdepth)))
    if config.image_adapter_layers is None:
        default_ki = max(1, round(_PAPER_K_I * vdepth / _PAPER_VISION_DEPTH))
        changes["image_adapter_layers"] = int(preset.get("image_adapter_layers", default_ki))
    if config.text_adapter_layers is None:
        default_kt = max(1, round(_PAPER_K_T * tdepth / _PAPER_TEXT_DEPTH))
        changes["text_adapter_layers"] = int(preset.get("text_adapter_layers", default_kt))
    resolved = config.replace(**changes)
    _validate_depths(resolved, vdepth, tdepth)
    check_image_size(resolved.image_size, resolved.backbone)
    return resolved


def _validate_depths(config: AAClipConfig, vdepth: int, tdepth: int) -> None:
    levels = config.levels or ()
    if len(levels) == 0 or any(not 1 <= lvl <= vdepth for lvl in levels) or list(levels) != sorted(set(levels)):
        msg = f"levels {levels} must be increasing 1-based block indices within 1..{vdepth} of {config.backbone}."
        raise ValueError(msg)
    if not 0 <= config.image_adapter_layers <= vdepth:
        msg = f"image_adapter_layers={config.image_adapter_layers} exceeds the {vdepth} vision blocks."
        raise ValueError(msg)
    if not 0 <= config.text_adapter_layers <= tdepth:
        msg = f"text_adapter_layers={config.text_adapter_layers} exceeds the {tdepth} text blocks."
        raise ValueError(msg)


def _is_torchscript_archive(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def _load_torchscript_weights(model: torch.nn.Module, path: Path) -> None:
    """OpenAI's released ``.pt`` files are TorchScript archives.

    open_clip's ``load_checkpoint`` reads files with ``torch.load(weights_only=True)``, which refuses
    TorchScript (and ``weights_only=False`` would unpickle arbitrary code). ``torch.jit.load`` reads
    them with TorchScript's own unpickler, which cannot call Python functions; the state dict then
    goes through open_clip's public position-embedding resize.
    """
    state = torch.jit.load(str(path), map_location="cpu").state_dict()
    for key in ("input_resolution", "context_length", "vocab_size"):  # archive attributes, not weights
        state.pop(key, None)
    state = {k: v.float() if torch.is_floating_point(v) else v for k, v in state.items()}
    resize_pos_embed(state, model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "logit_bias"]
    if missing or unexpected:
        raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")


def load_backbone_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load local CLIP weights into ``model`` without executing pickled code.

    TorchScript archives (OpenAI ``.pt``) go through ``torch.jit.load``; everything else
    (open_clip ``.bin``/``.pt`` state dicts, wrapped or not, ``.safetensors``) through open_clip's
    ``load_checkpoint`` with ``weights_only=True``, which also resizes the position embedding.

    Raises:
        BackboneWeightsError: the file is missing, unreadable, unsafe, or does not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise BackboneWeightsError(f"Backbone weights file {str(path)!r} does not exist.")
    try:
        if _is_torchscript_archive(path):
            _load_torchscript_weights(model, path)
        else:
            open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - corrupt, unsafe or mismatched files raise many types
        detail = " ".join(str(err).split())[:400] or type(err).__name__  # one line, bounded
        if isinstance(err, pickle.UnpicklingError) or "weights_only" in detail:
            # torch's own text goes on to suggest weights_only=False, i.e. running the file's code
            detail = "it holds Python objects beyond tensors, which could run code when unpickled; refused"
        msg = f"Could not read backbone weights {str(path)!r} into {type(model).__name__}: {detail}"
        raise BackboneWeightsError(msg) from err


def _offline_hint(config: AAClipConfig) -> str:
    preset = get_backbone_preset(config.backbone) or {}
    if "weights_url" in preset:
        return (
            f"Download {preset['weights_file']} from {preset['weights_url']} "
            f"(sha256 {preset['weights_sha256']}) and pass its path as --backbone-weights (CLI), "
            "--backbone_weights (bundle) or AAClipConfig.pretrained (Python)."
        )
    return ("Download the weights file of this open_clip tag and pass its path as --backbone-weights (CLI), "
            "--backbone_weights (bundle) or AAClipConfig.pretrained (Python).")


def _hub_file_names(filename: str) -> list[str]:
    """The files open_clip tries in a Hugging Face repository: safetensors first, then ``filename``."""
    filename = filename or _HF_WEIGHTS_NAME
    safe = "open_clip_model.safetensors" if filename == _HF_WEIGHTS_NAME else str(Path(filename).with_suffix(".safetensors"))
    return [safe, filename]


def _cached_weights(pcfg: dict) -> str | None:
    """The weights of an open_clip tag already on disk (Hugging Face cache, then open_clip's URL cache)."""
    hub = pcfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = os.path.split(hub)
        for name in _hub_file_names(filename):
            found = try_to_load_from_cache(repo_id, name)
            if isinstance(found, str):
                return found
    url = pcfg.get("url", "")
    if url and (Path.home() / ".cache" / "clip" / os.path.basename(url)).is_file():
        return open_clip.download_pretrained_from_url(url)  # checks the file's sha256, no request
    return None


def _offline_reason(pcfg: dict) -> str | None:
    """Why no download can work (HF_HUB_OFFLINE, or the host does not answer within a few seconds), else None."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set (offline)"
    host = _HUB_HOST if pcfg.get("hf_hub") else urlparse(pcfg.get("url", "")).hostname or _HUB_HOST
    answer: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=_PROBE_SECONDS).close()
            answer.append(None)
        except OSError as err:
            answer.append(str(err) or type(err).__name__)

    worker = threading.Thread(target=probe, daemon=True)  # a name lookup has no timeout of its own
    worker.start()
    worker.join(_PROBE_SECONDS)
    if answer and answer[0] is None:
        return None
    why = answer[0] if answer else f"no answer in {_PROBE_SECONDS:g} s"
    return f"{host} cannot be reached ({why}; offline?)"


def _download_tag(config: AAClipConfig) -> str:
    tag = config.pretrained
    pcfg = open_clip.get_pretrained_cfg(config.backbone, tag)
    if not pcfg:
        tags = open_clip.list_pretrained_tags_by_model(config.backbone)
        msg = (
            f"pretrained={tag!r} is neither a local file nor an open_clip tag of {config.backbone}; "
            f"tags: {tags}. {_offline_hint(config)}"
        )
        raise BackboneWeightsError(msg)
    cached = _cached_weights(pcfg)
    if cached:
        logger.info("CLIP weights %s/%s found in the cache: %s", config.backbone, tag, cached)
        return cached
    offline = _offline_reason(pcfg)
    if offline:  # decided before any request: the hub client would retry for a minute first
        msg = (f"{config.backbone}/{tag}: no local weights file and none in the open_clip or Hugging Face cache, "
               f"and {offline}. {_offline_hint(config)}")
        raise BackboneWeightsError(msg)
    try:
        return open_clip.download_pretrained(pcfg)
    except Exception as err:  # noqa: BLE001 - network errors come in many types
        msg = f"Could not download CLIP weights {config.backbone}/{tag} ({err}). {_offline_hint(config)}"
        raise BackboneWeightsError(msg) from err


def build_clip(config: AAClipConfig) -> torch.nn.Module:
    """Build the frozen open_clip CLIP of ``config`` (already resolved) and load its weights.

    The positional embedding is resized to ``image_size`` by open_clip's ``resize_pos_embed``
    (bicubic, antialias, class token kept), as spec section 1 requires.
    """
    _check_known_model(config.backbone)
    source = config.pretrained or RANDOM_WEIGHTS
    # Find (or download) the weights before building: a missing file fails in a second, not after
    # allocating a 400M-parameter model.
    path = None
    if not is_random_weights(source):  # "random", "none", ... (the one list: identity.RANDOM_WEIGHT_TAGS)
        path = source if os.path.isfile(source) else _download_tag(config)
    # Random weights come from a fixed seed (without touching the caller's RNG), so smoke runs,
    # torchrun ranks and re-runs all see the same network.
    with torch.random.fork_rng(devices=[]), _quiet_random_init_notice(path is not None):
        if path is None:
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
        model = open_clip.create_model(
            config.backbone,
            pretrained=None,
            force_image_size=config.image_size,
            force_quick_gelu=config.quick_gelu,
        )
    if path is None:
        logger.warning("Backbone %s has RANDOM weights: anomaly maps and scores are meaningless.", config.backbone)
    else:
        load_backbone_weights(model, path)
        logger.info("Loaded CLIP weights %s into %s at %d px", path, config.backbone, config.image_size)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


class _DropRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextlib.contextmanager
def _quiet_random_init_notice(weights_follow: bool):
    """Hide open_clip's "Model initialized randomly" while building a model whose weights are loaded next."""
    if not weights_follow:
        yield
        return
    notice = _DropRandomInitNotice()
    root = logging.getLogger()
    root.addFilter(notice)
    try:
        yield
    finally:
        root.removeFilter(notice)
