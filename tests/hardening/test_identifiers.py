"""No patient identifier read from DICOM reaches a file name, report, table or log.

DICOM inputs carry planted PatientName / PatientID / PatientBirthDate; inference runs with every
output on (NIfTI overlay and mask, scores, DICOM SEG and Parametric Map). Only the DICOM SEG/PM
objects may carry them: the standard files a derived object in the source's Patient and Study
(highdicom copies the Patient module, see inference/writers/_dicom_sources.py), and nothing else of
the source's identifying attributes may appear in them.
"""

from __future__ import annotations

import gzip
import io
import logging

import numpy as np
import pydicom
import pytest
from PIL import Image

from ._files import PLANTED, planted_series, write_png

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0"]
NEEDLES = [v.encode() for v in PLANTED.values()] + [b"Doe", b"Planted"]


def _readable_bytes(path) -> bytes:
    """What a reader of the file would see: gzip is opened, PNG text chunks are decoded too."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw += gzip.decompress(raw)
    if path.suffix == ".png":
        with Image.open(path) as image:
            raw += repr(image.info).encode()
    return raw


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    from aaclip_med.cli import main

    root = tmp_path_factory.mktemp("ids")
    planted_series(root / "in" / "series01")
    write_png(root / "in" / "photo01.png", np.full((6, 6), 40, np.uint8))
    handler = logging.StreamHandler(log := io.StringIO())
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        code = main(["-vv", "infer", str(root / "in"), "--out", str(root / "out"), "--modality", "ct",
                     "--threshold", "0", "--dicom-out", *TINY])
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(previous)
    return root / "out", code, log.getvalue()


def test_outputs_named_from_file_names_only(planted_run):
    out, code, _ = planted_run
    assert code == 0
    names = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert "series01_anomaly.nii.gz" in names and "series01_seg.dcm" in names and "series01_pmap.dcm" in names
    for name in names:
        assert not any(n.decode().lower() in name.lower() for n in NEEDLES), name


def test_no_identifier_outside_dicom_objects(planted_run):
    out, _, log = planted_run
    assert "series01" in log  # the log was captured and talks about the case
    for needle in NEEDLES:
        assert needle.decode() not in log
    scanned = 0
    for path in out.rglob("*"):
        if path.is_file() and path.suffix != ".dcm":
            data = _readable_bytes(path)
            scanned += 1
            assert not [n for n in NEEDLES if n in data], path
    assert scanned >= 8  # overlay, mask, scores json, csv tables, run.json, summary, png ...


@pytest.mark.parametrize("name", ["series01_seg.dcm", "series01_pmap.dcm"])
def test_dicom_objects_copy_only_the_patient_module(planted_run, name):
    out, _, _ = planted_run
    ds = pydicom.dcmread(out / name)
    assert str(ds.PatientName) == PLANTED["PatientName"]
    assert ds.PatientID == PLANTED["PatientID"] and ds.PatientBirthDate == PLANTED["PatientBirthDate"]
    found = {elem.keyword for elem in ds.iterall() if any(n in str(elem.value).encode() for n in NEEDLES)}
    assert found == {"PatientName", "PatientID", "PatientBirthDate"}  # once each, nowhere else
