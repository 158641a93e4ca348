"""Site adaptation from normal scans: building the reference memory (coreset, streaming build, sources).

The memory itself (its file, identity check and scoring) is :mod:`aaclip_med.memory`; its names are
re-exported here for the API.

- :mod:`~aaclip_med.adaptation.coreset`: greedy k-center selection (PatchCore);
- :mod:`~aaclip_med.adaptation.builder`: the streaming build, bounded by ``--max-mb``;
- :mod:`~aaclip_med.adaptation.sources`: reference slices from files, folders or a manifest;

User guide: docs/reference-memory.md.
"""

from aaclip_med.adaptation.builder import ReferenceSlices, build_class_memory, build_references
from aaclip_med.adaptation.coreset import greedy_coreset
from aaclip_med.memory import (
    ClassMemory,
    ReferenceBank,
    ReferenceScorer,
    check_references,
    load_references,
    save_references,
)

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
