"""Atomic output files, the one way this package writes a file that someone else reads.

A file is written under a temporary name in its own folder and renamed when complete, so a crash
or a killed job leaves a temporary file behind, never a truncated output under its final name.
Temporary names start with ``.tmp-`` so that a resumed run can recognise and remove them.

Files are created with ``open()``, so they get the umask's default permissions (usually 0644): a
pipeline's service account can read every output alike (``tempfile.mkstemp`` would make 0600).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "TMP_PREFIX",
    "append_json_line",
    "atomic_path",
    "json_line",
    "move_into",
    "check_output_folder",
    "json_safe",
    "remove_stale_temporaries",
    "sha256_file",
    "staging_folder",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]

TMP_PREFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffixes, so writers pick the format); rename on success.

    On any exception the temporary file is removed and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield tmp
        if tmp.is_file():  # writers that create files privately (safetensors: 0600) get the policy too
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def json_safe(value: Any) -> Any:
    """A copy of ``value`` with non-finite floats as None and tuples as lists, for standard JSON.

    ``json.dumps`` would write NaN/Infinity tokens, which strict parsers (and most other languages)
    reject.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, data: Any, sort_keys: bool = False) -> Path:
    """Write ``data`` as indented standard JSON (see :func:`json_safe`) with a final newline, atomically."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=sort_keys, allow_nan=False)
    return write_text_atomic(path, text + "\n")


def json_line(data: Any) -> str:
    """``data`` as one line of standard JSON (see :func:`json_safe`), without the newline."""
    return json.dumps(json_safe(data), allow_nan=False, ensure_ascii=False)


def append_json_line(path: str | os.PathLike, data: Any) -> Path:
    """Append ``data`` to the JSON-lines file ``path`` as one line, in one ``write`` call.

    Other appenders never interleave inside the line (``O_APPEND``), and a line torn by a killed
    run is ended before the new one, so it spoils only itself, never the record that follows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json_line(data) + "\n").encode("utf-8")
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as previous:
            previous.seek(-1, os.SEEK_END)
            if previous.read(1) != b"\n":
                line = b"\n" + line
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(handle, line)
    finally:
        os.close(handle)
    return path


@contextlib.contextmanager
def staging_folder(parent: str | os.PathLike, name: str = "staging") -> Iterator[Path]:
    """Yield a new folder in ``parent`` under a temporary name; it is removed on exit, whatever happened.

    Outputs are written there and moved to their final names with :func:`move_into` once all are
    complete; a killed run leaves the folder to :func:`remove_stale_temporaries`.
    """
    folder = Path(parent) / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_into(paths: Iterable[str | os.PathLike], folder: str | os.PathLike) -> list[Path]:
    """Move each of ``paths`` into ``folder`` under its own name with ``os.replace`` (atomic per file), in order."""
    moved = []
    for path in paths:
        target = Path(folder) / Path(path).name
        os.replace(path, target)
        moved.append(target)
    return moved


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporary files and staging folders left in ``folder`` by an interrupted run; returns the count."""
    count = 0
    for tmp in sorted(Path(folder).rglob(f"{TMP_PREFIX}*"), reverse=True):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        count += 1
    return count


def check_output_folder(folder: str | os.PathLike, option: str = "--out") -> None:
    """Refuse an output folder that cannot be written, before anything slow (a model) is loaded.

    Nothing is created: an existing folder must be writable, a new one must have a writable
    nearest existing parent. ``os.access`` answers for read-only mounts too, which stop root
    (file modes do not).

    Raises:
        OSError: naming ``option``, the folder and why (a file in its way, not writable).
    """
    folder = Path(folder)
    if folder.exists():
        if not folder.is_dir():
            raise NotADirectoryError(f"{option} {folder} is a file; give a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"{option} {folder}: the output folder is not writable (read-only or no permission); "
                                  "choose another folder")
        return
    parent = folder.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"{option} {folder}: cannot create the output folder, {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {folder}: cannot create the output folder in {parent} (read-only or no "
                              "permission); choose another folder")


def sha256_file(path: str | os.PathLike | None) -> str | None:
    """Hex sha256 of a file, or None when there is no file.

    Remembered per (path, size, modification time): a run record is written per run, and PACS runs
    write one per series, while the CLIP file hashed for it is ~0.9 GB (ViT-L/14-336).
    """
    if not path or not Path(path).is_file():
        return None
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
