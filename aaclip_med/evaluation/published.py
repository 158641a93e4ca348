"""Published AA-CLIP numbers (spec section 10), shipped as package data for comparison tables."""

from __future__ import annotations

import json
import re
from importlib import resources

__all__ = ["list_published", "get_published"]

_FILE = "published_aaclip.json"


def _load() -> dict:
    # Read on each call: the file is tiny and callers get their own copy (no module-level cache).
    text = resources.files("aaclip_med.evaluation").joinpath(_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def _canonical(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def list_published() -> list[str]:
    """Keys of the datasets with published numbers."""
    return sorted(_load()["datasets"])


def get_published(dataset: str) -> dict | None:
    """Published numbers of ``dataset`` (matched on key, display name or alias, ignoring case
    and punctuation), or None when the paper did not report it.

    Returns:
        ``{"key", "name", "source", "pixel_auroc", "image_auroc"}`` in percent (None where the
        paper reports no number, e.g. image AUROC of the all-anomalous polyp sets).
    """
    data = _load()
    wanted = _canonical(dataset)
    for key, entry in data["datasets"].items():
        names = [key, entry["name"], *entry.get("aliases", [])]
        if wanted in {_canonical(n) for n in names}:
            return {
                "key": key,
                "name": entry["name"],
                "source": data["source"],
                "pixel_auroc": entry["pixel_auroc"],
                "image_auroc": entry["image_auroc"],
            }
    return None
