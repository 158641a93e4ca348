"""Optional dependencies of exporting and of the exported-graph engines, imported on demand.

They are the ``export`` extra (:data:`aaclip_med.packages.DISTRIBUTIONS`): a missing one is one error
line naming the package and the extra (:func:`aaclip_med.packages.require`).
"""

from __future__ import annotations

from aaclip_med.packages import DISTRIBUTIONS, install_hint, installed_versions, require

__all__ = ["EXTRA_HINT", "require", "runtime_versions"]

EXTRA_HINT = install_hint("export")
_EXPORT_DISTRIBUTIONS = tuple(dist for dist, extra in DISTRIBUTIONS.values() if extra == "export")


def runtime_versions() -> dict[str, str | None]:
    """Installed versions of the packages an exported graph was made or is run with."""
    return installed_versions(("aaclip-med", "torch", "open_clip_torch", "monai", "numpy", *_EXPORT_DISTRIBUTIONS))
