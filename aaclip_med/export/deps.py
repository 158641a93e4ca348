"""Optional dependencies of exporting and of the exported-graph engines, imported on demand.

They are the ``export`` extra (:data:`~aaclip_med.export.registry.PACKAGES`): a missing one is one
error line naming the package and the extra.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from types import ModuleType

from aaclip_med.export.registry import PACKAGES, Package

__all__ = ["require", "runtime_versions"]


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (or a submodule of a package of :data:`PACKAGES`) or raise ImportError saying
    what needs it and how to install it."""
    package = PACKAGES.get(module.partition(".")[0], Package(module, module))
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs {package.distribution}: {package.hint}") from err


def runtime_versions() -> dict[str, str | None]:
    """Installed versions of the packages an exported graph was made or is run with."""
    names = ("aaclip-med", "torch", "open_clip_torch", "monai", "numpy", *(p.distribution for p in PACKAGES.values()))
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions
