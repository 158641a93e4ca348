"""The names of the reference memory's nearest-neighbour searches (standard library only: the CLI
offers them as ``--reference-search`` choices before torch is imported).

``auto``: the exact search measured faster on the device; ``screen`` and ``gemm``: the two exact
searches; ``approximate``: a faiss index, off by default (:mod:`aaclip_med.memory.search`).
"""

from __future__ import annotations

__all__ = ["REFERENCE_SEARCHES"]

REFERENCE_SEARCHES = ("auto", "screen", "gemm", "approximate")
