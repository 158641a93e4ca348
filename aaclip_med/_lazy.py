"""Packages whose public names are imported on first use.

The CLI reads light modules of heavy packages (``aaclip_med.inference.options``,
``aaclip_med.model.config``) to check its arguments; a package ``__init__`` that imported its
engines eagerly would pull in torch, MONAI and open_clip for ``--help``. Such a package lists, per
module, the public names it defines, and hands the list to :func:`lazy_exports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: Mapping[str, Iterable[str]]):
    """``__getattr__`` for ``package``: a name of ``modules[m]`` is imported from ``m`` when first read.

    Args:
        package: the package's ``__name__`` (for the error of an unknown name).
        modules: module -> the public names it defines.

    Returns:
        The module-level ``__getattr__`` (PEP 562) to assign in the package's ``__init__``.
    """
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
