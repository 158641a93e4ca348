"""PACS integration: studies in from a DICOM network, DICOM SEG / Parametric Map back out.

Two ways in, one inference (:func:`aaclip_med.inference.run_inference` with DICOM outputs):

- :func:`run_pacs`: DICOMweb. Find series (QIDO-RS) by study, series or query into a work list,
  retrieve them (WADO-RS), infer, store the results (STOW-RS) into the same study; under torchrun
  the work list is shared over the ranks (see ``run.py``).
- :func:`listen`: DIMSE. A C-STORE receiver; each series is inferred once complete (a quiet
  period) and its results are sent by C-STORE to a destination node.

Settings: :class:`DicomWebServer` (with :func:`read_credentials`: secrets from the environment or a
file), :class:`DimseNode`, and for inference the package's one
:class:`~aaclip_med.inference.InferenceOptions` (every setting of ``aaclip-med infer``, slicing
included). Failures are :class:`PacsError` with one-line messages naming the server and the UID. Needs the ``pacs`` extra (dicomweb-client, pynetdicom).

Example::

    from aaclip_med.inference import InferenceOptions
    from aaclip_med.model import load_adapters
    from aaclip_med.pacs import DicomWebServer, read_credentials, run_pacs

    server = DicomWebServer("https://pacs.example.org/dicom-web", read_credentials())
    record = run_pacs(server, load_adapters("adapters.safetensors"), "out",
                      query="Modality=MR&StudyDate=20240101-20240131", options=InferenceOptions(threshold=0.6))
    print(record["counts"])
"""

from __future__ import annotations

from aaclip_med._lazy import lazy_exports

# names load on first use: the CLI reads light modules (aaclip_med.pacs.settings) for its arguments
# without importing the DICOMweb client, pynetdicom and the inference stack
_MODULES = {
    "aaclip_med.pacs.errors": ("NotAnImageSeries", "PacsError", "SeriesError", "ServerError"),
    "aaclip_med.pacs.listener": ("listen",),
    "aaclip_med.pacs.run": ("run_pacs",),
    "aaclip_med.pacs.settings": ("Credentials", "DicomWebServer", "DimseNode", "read_credentials"),
    "aaclip_med.pacs.state": ("SeriesState", "series_key"),
}

__all__ = sorted(name for names in _MODULES.values() for name in names)

__getattr__ = lazy_exports(__name__, _MODULES)
