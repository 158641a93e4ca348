"""The exceptions of the PACS layer: one line each, naming the server and the study/series UID.

- :class:`ServerError`: the server cannot be used at all (down, refuses the credentials, TLS
  failure, not a DICOMweb service); the run stops, since every later request would fail alike.
- :class:`SeriesError`: this series cannot be processed (a corrupt instance, no pixel data,
  inference failed, the server refused to store its results); it is logged and the run goes on.
- :class:`NotAnImageSeries`: a series of non-image objects (structured reports, presentation
  states, segmentations); it is logged and the run goes on.
"""

from __future__ import annotations

from aaclip_med.inference.errors import one_line

__all__ = ["PacsError", "ServerError", "SeriesError", "NotAnImageSeries"]


class PacsError(RuntimeError):
    """A PACS operation failed; the message is one line naming the server and the UID concerned."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message, limit=600))


class ServerError(PacsError):
    """The server is unusable (unreachable, refuses the credentials, TLS, not DICOMweb/DICOM)."""


class SeriesError(PacsError):
    """One series cannot be processed; the others can."""


class NotAnImageSeries(SeriesError):
    """The series holds no image objects (e.g. a structured report)."""
