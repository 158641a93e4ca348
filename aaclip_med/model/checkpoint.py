"""Adapter checkpoints: our safetensors + JSON format, and import of the authors' public files.

Only the adapters and heads are stored (a few MB); the frozen CLIP is rebuilt from its own weights.
Loading never unpickles arbitrary objects: safetensors, or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from aaclip_med.files import atomic_path, write_json_atomic
from aaclip_med.model.aaclip import AAClip
from aaclip_med.model.adapter_file import (
    FORMAT_VERSION,
    IMPORT_HINT,
    META_KEY,
    CheckpointError,
    read_adapter_metadata,
)
from aaclip_med.model.config import AAClipConfig

__all__ = [
    "CheckpointError",
    "FORMAT_VERSION",
    "save_adapters",
    "load_adapters",
    "read_adapter_file",
    "convert_public_checkpoints",
    "import_public_checkpoints",
    "save_adapter_state",
    "safe_torch_load",
]

logger = logging.getLogger(__name__)

def save_adapters(model: AAClip, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save adapter and head weights to ``path`` (``.safetensors``) and the config beside it (``.json``).

    The config is also embedded in the safetensors header, so the weights file alone is enough.

    Args:
        model: the network.
        path: target file; ``.safetensors`` is appended when missing.
        extra: JSON-serialisable additions (e.g. score calibration, training provenance).
    """
    return save_adapter_state(model.adapter_state_dict(), model.config, path, extra)


def save_adapter_state(
    state: dict[str, torch.Tensor], config: AAClipConfig, path: str | os.PathLike, extra: dict[str, Any] | None = None
) -> Path:
    """Write an adapter state dict and its network config in the format of :func:`save_adapters`."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    meta = {"format_version": FORMAT_VERSION, "config": config.to_dict(), "extra": extra or {}}
    state = {k: v.detach().float().contiguous().cpu() for k, v in state.items()}
    header = {META_KEY: json.dumps(meta, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=header)
    write_json_atomic(path.with_suffix(".json"), meta, sort_keys=True)
    logger.info("Saved adapters (%d tensors) to %s", len(state), path)
    return path


def read_adapter_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(metadata with ``config``, state dict) of a file written by :func:`save_adapters`."""
    meta = read_adapter_metadata(path)  # missing, not safetensors, no config, too new: refused here
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}; {IMPORT_HINT}") from err
    return meta, state


def load_adapters(
    path: str | os.PathLike, pretrained: str | None = None, model: AAClip | None = None
) -> AAClip:
    """Rebuild the network of a checkpoint and load its adapters.

    Args:
        path: file written by :func:`save_adapters`.
        pretrained: CLIP weights (tag/file/"random") to use instead of the recorded ones, e.g. a
            local copy of the file on an offline machine.
        model: an already built network to load into (its config must match).
    """
    from aaclip_med.model.aaclip import build_aaclip

    meta, state = read_adapter_file(path)
    config = AAClipConfig.from_dict(meta["config"])
    if pretrained is not None:
        config = config.replace(pretrained=pretrained)
    if model is None:
        model = build_aaclip(config)
    try:
        model.load_adapter_state_dict(state)
    except ValueError as err:
        raise CheckpointError(f"{str(path)!r}: {err}") from err
    model.checkpoint_extra = meta.get("extra", {})
    return model


def safe_torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(weights_only=True)`` with an error that names the file when it is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {str(path)!r} does not exist.")
    refused = (f"Refusing to load {str(path)!r}: it holds Python objects beyond tensors and plain containers, "
               "which could run code when unpickled. Re-save it as a plain state dict of tensors.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own text goes on to suggest weights_only=False, i.e. running the file's code: not quoted
        raise CheckpointError(refused) from None
    except Exception as err:  # noqa: BLE001 - corrupt files raise many types
        detail = " ".join(str(err).split())[:300] or type(err).__name__  # one line, bounded
        if "weights_only" in detail:
            raise CheckpointError(refused) from None
        raise CheckpointError(f"Could not read checkpoint {str(path)!r}: {detail}") from err


def _unwrap(obj: Any, key: str, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and key in obj:
        obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{str(path)!r} does not hold a {key!r} state dict.")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _convert_text(state: dict[str, torch.Tensor], k_t: int) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        index, rest = key.split(".", 1)
        name = f"text_adapters.{index}" if int(index) < k_t else "text_proj"
        out[f"{name}.{rest}"] = value
    return out


def _convert_image(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renames = {"layer_adapters.": "image_adapters.", "seg_proj.": "seg_heads.", "det_proj.": "det_head."}
    out = {}
    for key, value in state.items():
        for old, new in renames.items():
            if key.startswith(old):
                out[new + key[len(old):]] = value
                break
        else:
            out[key] = value
    return out


def convert_public_checkpoints(
    text_adapter: str | os.PathLike, image_adapter: str | os.PathLike, config: AAClipConfig
) -> dict[str, torch.Tensor]:
    """Map the authors' ``text_adapter.pth`` / ``image_adapter.pth`` onto our adapter state dict.

    Their text file holds ``{"text_adapter": {"i.fc.0.weight" (i < K_T), "K_T.fc.0.weight" (the
    projection)}}``; the image file ``{"image_adapter": {"layer_adapters.i.fc.0.weight",
    "seg_proj.j.fc[.0].weight", "det_proj.fc[.0].weight"}}`` (``fc.0`` where their ``--relu`` put a
    LeakyReLU after the head). Both are read with ``weights_only=True``.
    """
    from aaclip_med.model.backbone import resolve_config

    config = resolve_config(config)
    text_path, image_path = Path(text_adapter), Path(image_adapter)
    text_state = _unwrap(safe_torch_load(text_path), "text_adapter", text_path)
    image_state = _unwrap(safe_torch_load(image_path), "image_adapter", image_path)
    return {**_convert_text(text_state, config.text_adapter_layers), **_convert_image(image_state)}


def _public_head_config(config: AAClipConfig, state: dict[str, torch.Tensor]) -> AAClipConfig:
    """``config`` with the head activations the converted files carry (their ``--relu``: a LeakyReLU
    after every seg head, stored as ``seg_proj.j.fc.0``, and after the det head, ``det_proj.fc.0``)."""
    relu_heads = any(k.startswith("seg_heads.") and ".fc.0." in k for k in state)
    relu_det = any(k.startswith("det_head.fc.0.") for k in state)
    return config.replace(head_activation=relu_heads, det_head_activation=relu_det)


def load_public_checkpoints(
    text_adapter: str | os.PathLike, image_adapter: str | os.PathLike, config: AAClipConfig | None = None
) -> AAClip:
    """Build the network and load the authors' public checkpoints into it.

    ``head_activation`` and ``det_head_activation`` are read off the files: their ``--relu`` option
    puts a LeakyReLU after every seg head and after the det head, stored as ``seg_proj.j.fc.0`` and
    ``det_proj.fc.0``.
    """
    from aaclip_med.model.aaclip import build_aaclip

    config = config or AAClipConfig()
    state = convert_public_checkpoints(text_adapter, image_adapter, config)
    model = build_aaclip(_public_head_config(config, state))
    try:
        model.load_adapter_state_dict(state)
    except ValueError as err:
        raise CheckpointError(f"{str(text_adapter)!r} / {str(image_adapter)!r}: {err}") from err
    return model


def _adapter_skeleton(config: AAClipConfig) -> AAClip:
    """The network of ``config`` on the meta device: parameter shapes without memory or weights."""
    import open_clip

    from aaclip_med.model.backbone import _quiet_random_init_notice

    with _quiet_random_init_notice(True):
        clip = open_clip.create_model(config.backbone, pretrained=None, force_image_size=config.image_size,
                                      force_quick_gelu=config.quick_gelu, device="meta")
    with torch.device("meta"):
        return AAClip(clip, config)


def import_public_checkpoints(
    text_adapter: str | os.PathLike, image_adapter: str | os.PathLike, path: str | os.PathLike,
    config: AAClipConfig | None = None, extra: dict[str, Any] | None = None,
) -> Path:
    """Convert the authors' ``text_adapter.pth`` / ``image_adapter.pth`` into an adapters file.

    No CLIP is built or loaded: the converted tensors are checked against the network's parameter
    shapes on the meta device, then written with the config (``pretrained`` as given in
    ``config``; None records the backbone preset's weights).

    Raises:
        CheckpointError: a file is unsafe, unreadable, or does not fit the backbone.
    """
    from aaclip_med.model.backbone import resolve_config

    config = config or AAClipConfig()
    state = convert_public_checkpoints(text_adapter, image_adapter, config)
    resolved = resolve_config(_public_head_config(config, state))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "copying into a meta parameter is a no-op"
            _adapter_skeleton(resolved).load_adapter_state_dict(state)
    except ValueError as err:
        raise CheckpointError(f"{str(text_adapter)!r} / {str(image_adapter)!r} do not fit {resolved.backbone}: {err}") from err
    return save_adapter_state(state, resolved.replace(pretrained=config.pretrained), path, extra)
