"""Fixtures of the PACS tests: a real Orthanc, a DICOMweb client on it, small CT/MR/SR series.

Orthanc missing: the tests fail in CI (``tests._tools.on_ci``; .ci/run installs it) and are skipped
elsewhere, with the command that installs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tests._synthetic import write_dicom_series
from tests._tools import skip_or_fail
from tests.pacs.orthanc import Orthanc, find_dicomweb_plugin, find_orthanc, free_port

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--seed", "0"]
THRESHOLD = 0.5
LISTENER_AE = "AACLIP"
# identifiers planted in the uploaded series: none may reach a log line, file name or run record
PLANTED = {"PatientName": "Doe^Planted", "PatientID": "PLANTED123", "PatientBirthDate": "19010101"}


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore:.*RANDOM weights.*:UserWarning")
    config.addinivalue_line("filterwarnings", "ignore:.*nvImageCodec.*:UserWarning")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """A running Orthanc (DICOMweb at ``.dicomweb_url``) that knows our listener as modality "aaclip"."""
    missing = [name for name, found in (("orthanc", find_orthanc()), ("orthanc-dicomweb", find_dicomweb_plugin()))
               if not found]
    if missing:
        message = f"Debian package(s) {', '.join(missing)} not installed: apt-get install orthanc orthanc-dicomweb"
        skip_or_fail(message)
    listen_port = free_port()
    server = Orthanc(tmp_path_factory.mktemp("orthanc"), modalities={"aaclip": (LISTENER_AE, "127.0.0.1", listen_port)})
    server.listen_port = listen_port
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(orthanc):
    """A dicomweb-client on the test Orthanc, authenticated."""
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    session.auth = (orthanc.user, orthanc.password)
    return DICOMwebClient(orthanc.dicomweb_url, session=session, timeout=10)


@pytest.fixture
def pacs_env(orthanc, monkeypatch):
    """The credentials in the environment, as a user would set them."""
    monkeypatch.setenv("AACLIP_PACS_USER", orthanc.user)
    monkeypatch.setenv("AACLIP_PACS_PASSWORD", orthanc.password)
    monkeypatch.delenv("AACLIP_PACS_TOKEN", raising=False)


def _plant(ds: Dataset) -> None:
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)


def write_ct(folder: Path, seed: int = 0, depth: int = 5, study_uid: str | None = None) -> list[Path]:
    """An oblique CT series (shuffled file names, scrambled InstanceNumber) with planted identifiers."""
    volume = np.random.default_rng(seed).integers(-300, 300, (depth, 24, 20)).astype(np.int16)
    paths = [item["path"] for item in write_dicom_series(folder, volume, shuffle_seed=seed)]
    for path in paths:
        ds = pydicom.dcmread(path)
        _plant(ds)
        ds.StudyDate = "20240110"
        if study_uid:
            ds.StudyInstanceUID = study_uid
        ds.save_as(path)
    return paths


def write_mr(folder: Path, seed: int = 1, depth: int = 4, study_date: str = "20240215") -> list[Path]:
    """An oblique MR series (MR Image Storage, no rescale) with planted identifiers."""
    volume = np.random.default_rng(seed).integers(0, 800, (depth, 20, 22)).astype(np.int16)
    paths = [item["path"] for item in write_dicom_series(folder, volume, angle_deg=35.0, shuffle_seed=seed)]
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.Modality, ds.StudyDate = "MR", study_date
        del ds.RescaleIntercept, ds.RescaleSlope
        _plant(ds)
        ds.save_as(path)
    return paths


def write_sr(path: Path, study_uid: str) -> Path:
    """A minimal Comprehensive SR instance in ``study_uid`` (a non-image series)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ComprehensiveSRStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ComprehensiveSRStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.Modality, ds.ValueType, ds.CompletionFlag, ds.VerificationFlag = "SR", "CONTAINER", "COMPLETE", "UNVERIFIED"
    _plant(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def corrupt_copy(paths: list[Path], folder: Path) -> list[Path]:
    """The series under a new series UID, its second instance's pixel data cut to 100 bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, out = generate_uid(), []
    for n, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if n == 1:
            ds.PixelData = ds.PixelData[:100]
        ds.save_as(folder / path.name)
        out.append(folder / path.name)
    return out


# what `pacs run`/`listen` store back, by SOP Class (the Parametric Map's Modality is the source's)
DERIVED = {"SEG": "1.2.840.10008.5.1.4.1.1.66.4", "PM": "1.2.840.10008.5.1.4.1.1.30"}


def derived_instances(client, study_uid: str, kind: str) -> list[dict]:
    """QIDO-RS answers for the instances of the study of ``kind`` ("SEG" or "PM", see DERIVED)."""
    return [item for item in client.search_for_instances(study_uid)
            if item.get("00080016", {}).get("Value", [None])[0] == DERIVED[kind]]


def upload(client, paths: list[Path]) -> Dataset:
    """STOW-RS the files to the test Orthanc; returns the first dataset (for its UIDs)."""
    datasets = [pydicom.dcmread(p) for p in paths]
    client.store_instances(datasets)
    return datasets[0]
