"""UIDs of the SEG and Parametric Map of a series, derived from the source series and the run's identity.

Storing a result again (after a crash between STOW-RS and the record of it, a rerun of a killed
rank) must replace the object in the PACS, not add a second copy beside it. So the Series and SOP
Instance UIDs of what is stored back are not random: they are a hash of the source's Series
Instance UID and of the identity of the run that made them (:func:`aaclip_med.identity.digest` over
the output fields: network, options, calibration, reference memory). The same series with the same
run gets the same UIDs; another model or threshold gets others, so two different results never
share a UID.

UIDs are ``2.25.<integer>``, the form DICOM gives UUID-derived UIDs (PS3.5 B.2), from 128 bits of a
SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pydicom

from aaclip_med.files import atomic_path
from aaclip_med.identity import OUTPUT_FIELDS, digest

__all__ = ["derived_uid", "result_uids", "assign_result_uids"]


def derived_uid(*parts: str) -> str:
    """``2.25.`` + 128 bits of the SHA-256 of ``parts`` (at most 44 characters)."""
    text = "\x1f".join(parts).encode("utf-8")
    return f"2.25.{int.from_bytes(hashlib.sha256(text).digest()[:16], 'big')}"


def result_uids(source_series_uid: str, run_identity: Mapping, kind: str) -> tuple[str, str]:
    """(Series Instance UID, SOP Instance UID) of the ``kind`` ("seg", "pmap") result of a source series."""
    identity = digest(run_identity, OUTPUT_FIELDS)
    return (derived_uid("aaclip-med", kind, "series", source_series_uid, identity),
            derived_uid("aaclip-med", kind, "instance", source_series_uid, identity))


def _kind(path: Path) -> str:
    return "seg" if path.stem.endswith("_seg") else "pmap"


def assign_result_uids(files: Sequence[Path], source_series_uid: str, run_json: Path) -> list[str]:
    """Give each DICOM result file its derived UIDs (rewritten atomically); returns the SOP Instance UIDs.

    Args:
        files: the ``*_seg.dcm`` / ``*_pmap.dcm`` outputs of one series.
        source_series_uid: the series they were computed from.
        run_json: the ``run.json`` written with them (the run's identity).
    """
    identity = json.loads(run_json.read_text(encoding="utf-8"))
    uids = []
    for path in files:
        series_uid, instance_uid = result_uids(source_series_uid, identity, _kind(path))
        ds = pydicom.dcmread(str(path))
        if ds.SOPInstanceUID != instance_uid or ds.SeriesInstanceUID != series_uid:
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = instance_uid
            with atomic_path(path) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
        uids.append(instance_uid)
    return uids
