"""The model card written beside an exported graph: what it is, what it takes and gives, what made it.

``card.json`` holds the identity of the network (backbone, input size, weight files and their
sha256, class, description, domain, modality preset), the graph's input and output names and
shapes, the ONNX opset, the package and runtime versions, and for int8 graphs the agreement with
fp32. ``aaclip-med infer --model DIR`` reads it to check a run against the graph before any image
is read (:func:`check_card`).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aaclip_med.files import write_json_atomic
from aaclip_med.identity import IDENTITY_VERSION, network_record

__all__ = ["CARD_NAME", "FORMAT_VERSION", "build_card", "read_card", "write_card", "io_spec"]

CARD_NAME = "card.json"
FORMAT_VERSION = 1


def io_spec(image_size: int, outputs: list[str], levels: int) -> dict[str, list[dict[str, Any]]]:
    """Names, shapes (``"batch"`` for the dynamic axis) and dtypes of the graph's input and outputs."""
    shapes = {"anomaly_map": ["batch", image_size, image_size], "level_maps": ["batch", levels, image_size, image_size]}
    return {
        "inputs": [{"name": "image", "shape": ["batch", 3, image_size, image_size], "dtype": "float32",
                    "meaning": "CLIP-normalised image after the modality preset"}],
        "outputs": [{"name": name, "shape": shapes.get(name, ["batch"]), "dtype": "float32"} for name in outputs],
    }


def build_card(record: dict, *, fmt: str, file: str, precision: str, class_name: str, description: str,
               domain: str, preset: str | None, levels: list[int], logit_scale: float, outputs: list[str],
               opset: int | None, versions: dict, int8: dict | None = None) -> dict:
    """The card's content. ``record`` is :func:`aaclip_med.inference.run_info.run_record` of the network."""
    identity = {"identity_version": IDENTITY_VERSION} | network_record(record)
    identity |= {"class_name": class_name, "description": description, "domain": domain, "preset": preset,
                 "levels": list(levels), "logit_scale": float(logit_scale)}
    return {
        "format_version": FORMAT_VERSION, "format": fmt, "file": file, "precision": precision,
        "identity": identity, **io_spec(int(record["image_size"]), outputs, len(levels)),
        "opset": opset, "versions": versions, "int8": int8,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_card(card: dict, folder: str | os.PathLike) -> Path:
    """Write ``card.json`` atomically (a reader never sees half a card)."""
    return write_json_atomic(Path(folder) / CARD_NAME, card)


def read_card(folder: str | os.PathLike) -> dict:
    """The card of an exported model folder.

    Raises:
        FileNotFoundError: the folder or its card is missing.
        ValueError: the card is not a card of this package's format.
    """
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"--model {folder}: no {CARD_NAME} (a folder written by 'aaclip-med export' holds one)")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    missing = [key for key in ("format", "file", "precision", "identity") if key not in (card if isinstance(card, dict) else {})]
    if missing or card.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: not an aaclip-med model card of format {FORMAT_VERSION} (missing {missing or 'nothing'}, "
                         f"format_version {card.get('format_version') if isinstance(card, dict) else None})")
    return card
