"""Writers of bad (or merely unusual) input files for the hardening tests, all small and fast."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image

from tests._synthetic import write_dicom_series, write_nifti

__all__ = ["write_constant_png", "write_png", "write_series", "truncate", "planted_series", "PLANTED"]

# identifiers planted in DICOM inputs; none may reach an output file name, report or log
PLANTED = {"PatientName": "Doe^Planted", "PatientID": "PLANTED123", "PatientBirthDate": "19010101"}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_constant_png(path: Path, width: int, height: int, value: int = 0) -> Path:
    """An 8-bit gray PNG of `width` x `height` pixels, streamed: a 20000 x 20000 file is ~400 KB
    and takes well under a second, without ever holding the pixels in memory."""
    row = b"\x00" + bytes([value]) * width  # filter type 0 + the pixels of one row
    block = row * max(1, 4_000_000 // len(row))
    rows_per_block = len(block) // len(row)
    packer, parts, left = zlib.compressobj(1), [], height
    while left > 0:
        count = min(left, rows_per_block)
        parts.append(packer.compress(block if count == rows_per_block else row * count))
        left -= count
    parts.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8 bit, gray, no interlace
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    return path


def write_png(path: Path, array: np.ndarray) -> Path:
    """Save `array` as PNG: uint16 (H, W) gives a 16-bit PNG, uint8 (H, W, 4) an RGBA one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_series(folder: Path, depth: int = 4, size: int = 16, seed: int = 0, **kwargs) -> list[dict]:
    """An axial CT series of `depth` slices (size x size), random HU values."""
    volume = np.random.default_rng(seed).integers(-200, 200, (depth, size, size))
    return write_dicom_series(folder, volume, angle_deg=0.0, shuffle_seed=None, **kwargs)


def truncate(path: Path, keep: int) -> Path:
    """Keep the first `keep` bytes of a file (negative: drop that many from the end)."""
    data = path.read_bytes()
    path.write_bytes(data[:keep])
    return path


def planted_series(folder: Path, depth: int = 3, size: int = 16, seed: int = 0) -> Path:
    """A CT series whose headers carry the :data:`PLANTED` identifiers."""
    for item in write_series(folder, depth, size, seed):
        ds = pydicom.dcmread(item["path"])
        for keyword, value in PLANTED.items():
            setattr(ds, keyword, value)
        ds.save_as(item["path"])
    return folder


def nifti(path: Path, data: np.ndarray) -> Path:
    """NIfTI with an identity affine."""
    return write_nifti(path, data, np.eye(4))
