"""Dataset manifests: JSON lines, one sample a line, paths relative to a dataset root.

Required keys: `image_path`, `label` (0.0 normal | 1.0 anomalous), `class_name`; `mask_path` may
be "" or absent for normal images. Optional: `slice_index`, `modality`, `case_id`, `domain`.
Files written by the authors' public AA-CLIP code have exactly the four base keys and load as
they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path, PurePosixPath, PureWindowsPath

from aaclip_med.files import write_text_atomic
from aaclip_med.keys import Keys

from .errors import DataError

__all__ = [
    "REQUIRED_KEYS",
    "read_manifest",
    "write_manifest",
    "validate_record",
    "check_relative_path",
    "check_classes",
    "record_case",
    "DESCRIPTIONS_FILE",
    "manifest_descriptions",
]

logger = logging.getLogger(__name__)

REQUIRED_KEYS = (Keys.IMAGE_PATH, Keys.LABEL, Keys.CLASS_NAME)
DESCRIPTIONS_FILE = "descriptions.json"  # class name -> description, beside a manifest ('aaclip-med sample' writes it)


def record_case(record: Mapping) -> str | None:
    """The case a record belongs to: its ``case_id``, else its ``image_path`` (the slice records of
    one volume share both); None for a sample with neither (an in-memory image)."""
    value = record.get(Keys.CASE_ID) or record.get(Keys.IMAGE_PATH)
    return None if value is None else str(value)


def check_relative_path(value: str, where: str) -> str:
    """Return `value` if it is a path inside the dataset root, else raise a DataError.

    Args:
        value: the path as written in the manifest.
        where: "file:line" used in the error.
    """
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        raise DataError(where, f"path {value!r} is absolute; manifest paths must be relative to the dataset root")
    if ".." in posix.parts or ".." in windows.parts:
        raise DataError(where, f"path {value!r} escapes the dataset root ('..')")
    return value


def validate_record(record: Mapping, where: str = "record") -> dict:
    """Check one manifest record and return a normalised copy (float label, str mask_path).

    Raises:
        DataError: a required key is missing, the label is not 0/1, or a path is not relative.
    """
    missing = [str(k) for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise DataError(where, f"missing key(s) {missing}; a line needs {[str(k) for k in REQUIRED_KEYS]}")
    out = dict(record)
    try:
        out[Keys.LABEL] = float(record[Keys.LABEL])
    except (TypeError, ValueError):
        out[Keys.LABEL] = None
    if out[Keys.LABEL] not in (0.0, 1.0):
        raise DataError(where, f"label must be 0 (normal) or 1 (anomalous), got {record[Keys.LABEL]!r}")
    out[Keys.MASK_PATH] = record.get(Keys.MASK_PATH) or ""
    for key in (Keys.IMAGE_PATH, Keys.MASK_PATH):
        if out[key]:
            check_relative_path(str(out[key]), where)
    if not out[Keys.IMAGE_PATH]:
        raise DataError(where, "image_path is empty")
    return out


def _parse_lines(text: str, path: Path) -> list[tuple[str, object]]:
    if text.lstrip().startswith("["):  # a JSON array is accepted too
        return [(f"{path}:item {n}", item) for n, item in enumerate(json.loads(text), 1)]
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append((f"{path}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}", f"not valid JSON ({exc.msg})") from exc
    return items


def read_manifest(path: str | PathLike) -> list[dict]:
    """Read and validate a manifest.

    Raises:
        DataError: missing/unreadable file, bad JSON, an invalid record (named by line), the same
            sample (image_path and slice_index) on two lines (it would be counted twice by the
            metrics), or no record at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "manifest not found")
    records, seen = [], {}
    for where, item in _parse_lines(path.read_text(encoding="utf-8"), path):
        if not isinstance(item, dict):
            raise DataError(where, f"expected a JSON object, got {type(item).__name__}")
        record = validate_record(item, where)
        key = (str(record[Keys.IMAGE_PATH]), record.get(Keys.SLICE_INDEX))
        if key in seen:
            raise DataError(where, f"duplicate of {seen[key]}: {record[Keys.IMAGE_PATH]!r} (slice {key[1]}) is listed twice")
        seen[key] = where
        records.append(record)
    if not records:
        raise DataError(path, "manifest holds no records (an empty dataset); check how it was built")
    logger.info("read %d records from %s", len(records), path)
    return records


def write_manifest(records: Iterable[Mapping], path: str | PathLike) -> Path:
    """Validate and write records as JSON lines, atomically (temporary file, then rename)."""
    path = Path(path)
    lines = [json.dumps(validate_record(r, f"record {n}"), ensure_ascii=False) for n, r in enumerate(records, 1)]
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
    logger.info("wrote %d records to %s", len(lines), path)
    return path


def check_classes(records: Iterable[Mapping], known_classes: Iterable[str], source: str | PathLike = "manifest") -> None:
    """Raise when a class of the manifest has no text description.

    Args:
        records: manifest records.
        known_classes: classes that have a description (from the prompt registry).
        source: the manifest, named in the error.
    """
    known = set(known_classes)
    unknown = sorted({str(r[Keys.CLASS_NAME]) for r in records} - known)
    if unknown:
        msg = f"class(es) {unknown} have no description; add one (e.g. 'scan') or use one of {sorted(known)}"
        raise DataError(source, msg)


def manifest_descriptions(manifest: str | PathLike, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Class descriptions of a manifest run: the :data:`DESCRIPTIONS_FILE` beside the manifest, if any, under the
    ``given`` ones (which win).

    Raises:
        DataError: the file beside the manifest is not a JSON object of class name -> text.
    """
    path = Path(manifest).parent / DESCRIPTIONS_FILE
    found: dict[str, str] = {}
    if path.is_file():
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: not valid JSON ({err.msg}); fix it or remove it") from err
        if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()):
            raise DataError(f"{path}: must map class names to description strings")
        logger.info("class descriptions of %s from %s", Path(manifest).name, path)
    return found | dict(given or {})
