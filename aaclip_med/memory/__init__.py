"""The reference memory: normal patch features per class and level, their file, and the search that scores with them.

- :mod:`~aaclip_med.memory.bank`: the ``refs.safetensors`` file (checksums, identity check);
- :mod:`~aaclip_med.memory.scoring`: memory maps and the rule combining them with zero-shot maps;
- :mod:`~aaclip_med.memory.search`: the nearest-neighbour searches (exact: int8 screen, blocked GEMM; an
  approximate faiss index, off by default).

Inference reads a memory from here; building one from normal scans is :mod:`aaclip_med.adaptation`
(which sits above inference: it loads cases as inference does).
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

# names load on first use: the CLI reads aaclip_med.memory.names without importing torch
_MODULES = {
    "aaclip_med.memory.bank": ("STAT_KEYS", "ClassMemory", "ReferenceBank", "check_references", "load_references",
                               "save_references"),
    "aaclip_med.memory.names": ("REFERENCE_SEARCHES",),
    "aaclip_med.memory.scoring": ("ReferenceScorer",),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)

__getattr__ = lazy_exports(__name__, _MODULES)
