"""Evaluation settings that the CLI offers (standard library only: ``aaclip-med evaluate --help`` and
its argument checks answer without numpy or torch)."""

from __future__ import annotations

__all__ = ["DEFAULT_CACHE_MB"]

# Mask volumes are kept as uint8: 256 MB hold one mask of 512 x 512 x 1000 (the passes go case by
# case, so one at a time must fit) or the masks of ~60 CTs of 512 x 512 x 64 (then the report pass
# decodes none again).
DEFAULT_CACHE_MB = 256
