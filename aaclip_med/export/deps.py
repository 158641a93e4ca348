"""Optional dependencies of exporting and of the exported-graph engines, imported on demand.

They are the ``export`` extra: a missing one is one error line naming the package and the extra.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType

__all__ = ["EXTRA_HINT", "require", "runtime_versions"]

EXTRA_HINT = "pip install 'aaclip-med[export]'"
# module -> distribution name (what the card records and what pip installs)
_DISTRIBUTIONS = {"onnx": "onnx", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise ImportError saying what needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs {_DISTRIBUTIONS.get(module, module)}: {EXTRA_HINT}") from err


def runtime_versions() -> dict[str, str | None]:
    """Installed versions of the packages an exported graph was made or is run with."""
    names = ("aaclip-med", "torch", "open_clip_torch", "monai", "numpy", *_DISTRIBUTIONS.values())
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
