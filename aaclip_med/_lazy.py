"""Packages whose public names are imported on first use.

The CLI reads light modules of heavy packages (``aaclip_med.inference.options``,
``aaclip_med.model.config``) to check its arguments; a package ``__init__`` that imported its
engines eagerly would pull in torch, MONAI and open_clip for ``--help``. Such a package maps each
public name to the module that defines it and hands :func:`lazy_exports` its module globals.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, api: Mapping[str, str]):
    """``__getattr__`` for ``package``: ``api[name]`` is imported when ``name`` is first read.

    Args:
        package: the package's ``__name__`` (for the error of an unknown name).
        api: public name -> module that defines it.

    Returns:
        The module-level ``__getattr__`` (PEP 562) to assign in the package's ``__init__``.
    """

    def __getattr__(name: str):
        if name in api:
            return getattr(importlib.import_module(api[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
