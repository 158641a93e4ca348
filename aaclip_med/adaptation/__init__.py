"""Site adaptation from normal scans: the reference memory (build, coreset, score).

- :mod:`~aaclip_med.adaptation.bank`: the ``refs.safetensors`` file and its identity check;
- :mod:`~aaclip_med.adaptation.coreset`: greedy k-center selection (PatchCore);
- :mod:`~aaclip_med.adaptation.builder`: the streaming build, bounded by ``--max-mb``;
- :mod:`~aaclip_med.adaptation.sources`: reference slices from files, folders or a manifest;
- :mod:`~aaclip_med.adaptation.scoring`: memory maps and the rule combining them with zero-shot maps.

User guide: docs/reference-memory.md.
"""

from aaclip_med.adaptation.bank import (
    ClassMemory,
    ReferenceBank,
    check_references,
    load_references,
    save_references,
)
from aaclip_med.adaptation.builder import ReferenceSlices, build_class_memory, build_references
from aaclip_med.adaptation.coreset import greedy_coreset
from aaclip_med.adaptation.scoring import ReferenceScorer

__all__ = [
    "ClassMemory",
    "ReferenceBank",
    "ReferenceScorer",
    "ReferenceSlices",
    "build_class_memory",
    "build_references",
    "check_references",
    "greedy_coreset",
    "load_references",
    "save_references",
]
