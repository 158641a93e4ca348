"""The metadata of an adapters file (its network config, format version and extras), read without torch.

An adapters file is safetensors: the tensors, plus a header entry ``"aaclip_med"`` holding JSON
``{"format_version", "config", "extra"}`` (a ``.json`` beside the file is the fallback for files
whose header lost it). :func:`read_adapter_metadata` is the one reader of that JSON: the loader
(:func:`aaclip_med.model.checkpoint.read_adapter_file`) and the CLI's argument checks both use it,
the CLI before torch is imported (safetensors reads the header with its numpy front end).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["CheckpointError", "FORMAT_VERSION", "META_KEY", "IMPORT_HINT", "read_adapter_metadata"]

FORMAT_VERSION = 1
META_KEY = "aaclip_med"
IMPORT_HINT = ("the authors' text_adapter.pth / image_adapter.pth are converted with 'aaclip-med import-weights "
               "--text-adapter text_adapter.pth --image-adapter image_adapter.pth --out adapters.safetensors'")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe, corrupt or does not fit the network."""


def _looks_like(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(2)
    return "a PyTorch zip checkpoint" if head == b"PK" else "a pickle" if head[:1] == b"\x80" else "something else"


def read_adapter_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """``{"format_version", "config", "extra"}`` of an adapters file written by ``save_adapters``.

    Raises:
        CheckpointError: the file does not exist, is not safetensors (a ``.pth`` pickle, a zip:
            the message says how to convert it), has no AA-CLIP metadata, or was written by a
            newer aaclip-med.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"adapter file {path}: no such file ({IMPORT_HINT})")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            header = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        msg = f"{path} is not a readable safetensors file (it looks like {_looks_like(path)}): {err}; {IMPORT_HINT}"
        raise CheckpointError(msg) from err
    beside = path.with_suffix(".json")
    try:
        if META_KEY in header:
            meta = json.loads(header[META_KEY])
        elif beside.is_file():
            meta = json.loads(beside.read_text(encoding="utf-8"))
        else:
            raise CheckpointError(f"{path} has no AA-CLIP config (header key {META_KEY!r} or a .json beside it).")
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its AA-CLIP metadata is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(f"{path}: its AA-CLIP metadata holds no 'config' object")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        msg = f"{path} has format version {meta['format_version']}; this aaclip-med reads <= {FORMAT_VERSION}."
        raise CheckpointError(msg)
    return meta
