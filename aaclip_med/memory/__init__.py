"""The reference memory: normal patch features per class and level, their file, and the search that scores with them.

- :mod:`~aaclip_med.memory.bank`: the ``refs.safetensors`` file (checksums, identity check);
- :mod:`~aaclip_med.memory.scoring`: memory maps and the rule combining them with zero-shot maps;
- :mod:`~aaclip_med.memory.search`: the nearest-neighbour searches (exact: int8 screen, blocked GEMM; an
  approximate faiss index, off by default).

Inference reads a memory from here; building one from normal scans is :mod:`aaclip_med.adaptation`
(which sits above inference: it loads cases as inference does).
"""

from aaclip_med.memory.bank import (
    STAT_KEYS,
    ClassMemory,
    ReferenceBank,
    check_references,
    load_references,
    save_references,
)
from aaclip_med.memory.scoring import ReferenceScorer

__all__ = [
    "STAT_KEYS",
    "ClassMemory",
    "ReferenceBank",
    "ReferenceScorer",
    "check_references",
    "load_references",
    "save_references",
]
