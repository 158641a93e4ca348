"""The folder an export is written to: what may already be in it, and what an earlier export left.

An export folder holds one graph: its model file(s) and ``card.json``. ``--out`` is a new or empty
folder, or one holding an earlier export, which the new one replaces whole (the earlier files that
the new export does not write are removed once it is complete). A folder holding anything else is
refused before a model is built, naming what is in it: an export never mixes its files with others
nor deletes files it did not write. Standard library only (the CLI checks ``--out`` first).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from aaclip_med.export.card import CARD_NAME
from aaclip_med.files import TMP_PREFIX, check_output_folder

__all__ = ["earlier_export_files", "check_export_folder"]

_SHOWN = 5  # files named in the refusal of a folder that holds other things


def earlier_export_files(folder: str | os.PathLike) -> set[str]:
    """Names of the files the export in ``folder`` wrote (its card and the files the card lists);
    empty when ``folder`` holds no card."""
    card_path = Path(folder) / CARD_NAME
    if not card_path.is_file():
        return set()
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {CARD_NAME}
    if not isinstance(card, dict):
        return {CARD_NAME}
    names = set(card.get("files") or {}) | {CARD_NAME}
    if isinstance(card.get("file"), str):
        names.add(card["file"])
        if card["file"].endswith(".xml"):  # cards of an older version list no files: the IR's weights
            names.add(card["file"][: -len(".xml")] + ".bin")
    return names


def check_export_folder(folder: str | os.PathLike, option: str = "--out") -> None:
    """Refuse ``folder`` unless it is new, empty or an earlier export, and writable.

    Raises:
        OSError: the folder is a file or cannot be written (:func:`aaclip_med.files.check_output_folder`).
        ValueError: it holds files that are not an earlier export's, naming them.
    """
    check_output_folder(folder, option)
    folder = Path(folder)
    if not folder.is_dir():
        return
    known = earlier_export_files(folder)
    others = sorted(p.name for p in folder.iterdir() if p.name not in known and not p.name.startswith(TMP_PREFIX))
    if others:
        shown = ", ".join(others[:_SHOWN]) + (f" and {len(others) - _SHOWN} more" if len(others) > _SHOWN else "")
        what = "holds no earlier export" if not known else f"holds files that are not its earlier export's ({CARD_NAME})"
        raise ValueError(f"{option} {folder} is not empty and {what}: {shown}. An export folder holds one graph; "
                         "give a new or empty folder")
