"""Modality presets and CT windows: package data behind ``list_*()`` / ``get_*()``.

The tables live in ``aaclip_med/configs/modalities/presets.json`` and ``ct_windows.json`` (installed
with the package) and are read on first use. Getters hand back copies, so a caller may edit what it
gets; an unknown name raises ``ValueError`` listing the choices. This module imports only the
standard library, so the command line can validate ``--modality`` before loading torch.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

__all__ = [
    "AUTO",
    "default_domain",
    "dicom_modality_presets",
    "get_ct_window",
    "get_modality",
    "list_ct_windows",
    "list_modalities",
    "modality_choices",
    "preset_for_dicom_modality",
    "resolve_modality_name",
]

AUTO = "auto"  # pick the preset per source (see aaclip_med.data.modality.detect_modality)


@functools.cache
def _read(name: str) -> dict[str, Any]:
    text = resources.files("aaclip_med").joinpath("configs", "modalities", name).read_text(encoding="utf-8")
    return json.loads(text)


def _windows() -> dict[str, list[float]]:
    return _read("ct_windows.json")["windows"]


def _presets() -> dict[str, dict[str, Any]]:
    data = _read("presets.json")
    windows = {f"ct-{name.replace('_', '-')}": {"kind": "ct", "window": name, "domain": "medical"} for name in _windows()}
    return {**windows, **data["presets"]}


def list_ct_windows() -> list[str]:
    """Names of the CT windows (``abdomen``, ``liver``, ...)."""
    return sorted(_windows())


def get_ct_window(name: str) -> tuple[float, float]:
    """(level, width) in HU of the window ``name``.

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    windows = _windows()
    if name not in windows:
        msg = f"unknown CT window {name!r}; choose one of {list_ct_windows()} or give (level, width) in HU"
        raise ValueError(msg)
    level, width = windows[name]
    return float(level), float(width)


def list_modalities() -> list[str]:
    """Names of the modality presets (aliases such as ``mr`` and the mode ``auto`` not included)."""
    return sorted(_presets())


def modality_choices() -> list[str]:
    """Every name ``--modality`` accepts: ``auto``, the presets and their aliases."""
    return [AUTO, *list_modalities(), *sorted(_read("presets.json")["aliases"])]


def resolve_modality_name(name: str, allow_auto: bool = False) -> str:
    """The preset name of ``name`` (aliases such as ``mr`` resolved).

    Args:
        name: a preset name, an alias, or ``auto`` when ``allow_auto``.
        allow_auto: accept ``auto`` (returned unchanged: it is resolved per source).

    Raises:
        ValueError: an unknown name (or ``auto`` where a concrete preset is needed); lists the choices.
    """
    if allow_auto and name == AUTO:
        return AUTO
    resolved = _read("presets.json")["aliases"].get(name, name)
    if resolved not in _presets():
        choices = modality_choices() if allow_auto else [c for c in modality_choices() if c != AUTO]
        where = "" if name != AUTO else " ('auto' is resolved per source: pick the preset first)"
        raise ValueError(f"unknown modality {name!r}{where}; choose one of {choices}")
    return resolved


def get_modality(name: str) -> dict[str, Any]:
    """A copy of the preset ``name`` (safe to modify): ``kind``, its parameters and ``domain``.

    Raises:
        ValueError: unknown name; the message lists the choices.
    """
    return copy.deepcopy(_presets()[resolve_modality_name(name)])


def default_domain(name: str) -> str:
    """The domain a preset implies (photo -> industrial, every medical preset -> medical), as its entry
    declares it: the one rule of inference, export, reference memories and training.

    Raises:
        ValueError: unknown preset, or a preset entry that declares no domain.
    """
    preset = get_modality(name)
    if preset.get("domain") not in ("medical", "industrial"):
        raise ValueError(f"modality preset {name!r} declares no domain ('medical' or 'industrial') in presets.json")
    return str(preset["domain"])


def dicom_modality_presets() -> dict[str, str]:
    """A copy of the DICOM Modality -> preset table of ``--modality auto``."""
    return dict(_read("presets.json")["dicom_modalities"])


def preset_for_dicom_modality(tag: str | None) -> str | None:
    """The preset of a DICOM Modality attribute (``CT`` -> ``ct``, ``MR`` -> ``mri``...), None if none fits."""
    if not tag:
        return None
    return dicom_modality_presets().get(str(tag).strip().upper())
