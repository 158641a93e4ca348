"""The model card written beside an exported graph: what it is, what it takes and gives, what made it.

``card.json`` holds the identity of the network (backbone, input size, weight files and their
sha256, class, description, domain, modality preset), the graph's input and output names and
shapes, the ONNX opset, the package and runtime versions, and for int8 graphs the agreement with
fp32, the size and sha256 of every file of the folder, and the sha256 of its own content.
``aaclip-med infer --model DIR`` reads it to check the folder and the run against the graph before
any image is read: a model file that was deleted, cut short or replaced, a card edited by hand, and a
run option that differs from the card (:func:`card_mismatches`) are refused by name.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aaclip_med.files import sha256_file, write_json_atomic
from aaclip_med.identity import IDENTITY_VERSION, Field, differences, network_identity, network_record
from aaclip_med.timestamps import utc_timestamp

__all__ = ["CARD_NAME", "FORMAT_VERSION", "build_card", "read_card", "write_card", "io_spec", "file_records",
           "check_files", "card_mismatches"]

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


def file_records(paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """name -> {bytes, sha256} of the files of an export (what :func:`check_files` compares)."""
    return {path.name: {"bytes": path.stat().st_size, "sha256": sha256_file(path)} for path in sorted(paths)}


def build_card(record: dict, *, fmt: str, file: str, precision: str, class_name: str, description: str,
               domain: str, preset: str | None, levels: list[int], logit_scale: float, outputs: list[str],
               opset: int | None, versions: dict, files: dict[str, dict], int8: dict | None = None) -> dict:
    """The card's content. ``record`` is :func:`aaclip_med.inference.run_info.run_record` of the network,
    ``files`` the :func:`file_records` of the folder's model files."""
    identity = {"identity_version": IDENTITY_VERSION} | network_record(record)
    identity |= {"class_name": class_name, "description": description, "domain": domain, "preset": preset,
                 "levels": list(levels), "logit_scale": float(logit_scale)}
    return {
        "format_version": FORMAT_VERSION, "format": fmt, "file": file, "precision": precision,
        "identity": identity, **io_spec(int(record["image_size"]), outputs, len(levels)),
        "opset": opset, "versions": versions, "int8": int8, "files": files,
        "created": utc_timestamp(),
    }


def _content_sha256(card: Mapping) -> str:
    """sha256 of the card without its own ``card_sha256`` (keys sorted, so the order of writing does not count)."""
    content = {key: value for key, value in card.items() if key != "card_sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def write_card(card: dict, folder: str | os.PathLike) -> Path:
    """Write ``card.json`` atomically (a reader never sees half a card), sealed by the sha256 of its content."""
    return write_json_atomic(Path(folder) / CARD_NAME, card | {"card_sha256": _content_sha256(card)})


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
    if "card_sha256" in card and card["card_sha256"] != _content_sha256(card):
        raise ValueError(f"{path}: edited after export (its content no longer matches the card_sha256 written with it); "
                         "a card describes the graph it was written with: export the graph again")
    return card


def check_files(card: Mapping, folder: str | os.PathLike) -> None:
    """Refuse a folder whose model files are missing, cut short or replaced since the card was written.

    Raises:
        FileNotFoundError: a file the card names is not in ``folder``.
        ValueError: a file's size or sha256 differs from the card's.
    """
    folder = Path(folder)
    records = card.get("files") or {card["file"]: {}}  # a card of an older version names only its model file
    for name, record in records.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing ({folder / CARD_NAME} names it); copy the whole export folder, "
                                    "or export the graph again")
        size = path.stat().st_size
        if "bytes" in record and size != record["bytes"]:
            raise ValueError(f"{path}: {size} bytes, the card records {record['bytes']} (cut short or replaced since "
                             "export); copy the export folder again, or export the graph again")
        if "sha256" in record and sha256_file(path) != record["sha256"]:
            raise ValueError(f"{path}: its sha256 differs from the card's (changed since export); copy the export "
                             "folder again, or export the graph again")


def card_mismatches(card: Mapping, given: Mapping[str, tuple[str, Any]]) -> list[str]:
    """One line per option the run gives that differs from the card, compared as :mod:`aaclip_med.identity`
    compares records (CLIP weights by their file's sha256).

    Args:
        card: a card read by :func:`read_card`.
        given: the option as the caller names it (``--image-size``, ``class_name``) -> (the card's identity
            field, or ``precision``; the value the run asks for). A None value is not given.

    Returns:
        ``"OPTION: the exported graph X, this run Y"`` lines, in the order of ``given``; a field the card
        does not record is a line too (the run cannot be checked against it).
    """
    stored = network_identity(card["identity"]) | {
        key: value for key, value in card["identity"].items() if key not in ("pretrained", "pretrained_sha256")}
    stored["precision"] = card.get("precision")
    lines = []
    for option, (name, value) in given.items():
        if value is None:
            continue
        if name not in stored:
            lines.append(f"{option}: the card does not record {name}, so {value!r} cannot be checked")
            continue
        field = Field(option, name)
        lines += differences({option: stored[name]}, {option: value}, [field], what="the exported graph").refused
    return lines
