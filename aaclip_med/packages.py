"""Installed packages: their versions (recorded with results) and the optional ones, imported on demand.

An optional dependency belongs to an extra of ``pyproject.toml``; a missing one is one ImportError
line that says what needed it and the ``pip install`` that brings it. Imports no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib import metadata
from types import ModuleType

__all__ = ["DISTRIBUTIONS", "install_hint", "installed_version", "installed_versions", "require"]

# module -> (distribution pip installs, the extra of this package that brings it)
DISTRIBUTIONS: dict[str, tuple[str, str]] = {
    "onnx": ("onnx", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "openvino": ("openvino", "export"),
    "highdicom": ("highdicom", "dicom"),
    "pynetdicom": ("pynetdicom", "pacs"),
    "dicomweb_client": ("dicomweb-client", "pacs"),
    "monai.deploy.core": ("monai-deploy-app-sdk", "deploy"),
}


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution`` (a pip name such as ``open_clip_torch``), None when absent."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """:func:`installed_version` of each name, in order."""
    return {name: installed_version(name) for name in distributions}


def install_hint(extra: str) -> str:
    """The command that installs the extra ``extra`` of this package."""
    return f"pip install 'aaclip-med[{extra}]'"


def _distribution(module: str) -> tuple[str, str]:
    """The (distribution, extra) of ``module`` or of the nearest package above it (``onnxruntime.quantization``)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in DISTRIBUTIONS:
            return DISTRIBUTIONS[".".join(parts[:end])]
    raise KeyError(f"{module} is not an optional dependency of aaclip-med (add it to DISTRIBUTIONS)")


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (in :data:`DISTRIBUTIONS`, or a module of one) or raise ImportError naming
    ``purpose``, the distribution and the extra that installs it, e.g. "writing DICOM outputs needs
    highdicom: pip install 'aaclip-med[dicom]'"."""
    distribution, extra = _distribution(module)
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs {distribution}: {install_hint(extra)}") from err
