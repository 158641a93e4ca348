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

from aaclip_med.pacs.errors import NotAnImageSeries, PacsError, SeriesError, ServerError
from aaclip_med.pacs.listener import listen
from aaclip_med.pacs.run import run_pacs
from aaclip_med.pacs.settings import Credentials, DicomWebServer, DimseNode, read_credentials
from aaclip_med.pacs.state import SeriesState, series_key

__all__ = [
    "Credentials",
    "DicomWebServer",
    "DimseNode",
    "NotAnImageSeries",
    "PacsError",
    "SeriesError",
    "SeriesState",
    "ServerError",
    "listen",
    "read_credentials",
    "run_pacs",
    "series_key",
]
