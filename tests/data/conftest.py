"""Small files shared by the data tests (written fresh into tmp_path, no downloads)."""

from __future__ import annotations

import numpy as np
import pytest

from tests._synthetic import write_dicom_series, write_nifti


def pytest_configure(config):
    # MONAI probes for an optional GPU DICOM decoder and warns each time a reader is built
    config.addinivalue_line("filterwarnings", "ignore:.*nvImageCodec.*:UserWarning")


@pytest.fixture
def ct_volume() -> np.ndarray:
    """(D, H, W) = (4, 6, 5) HU values, distinct per voxel, slice 0 all air."""
    vol = np.arange(4 * 6 * 5).reshape(4, 6, 5) * 7 - 300
    vol[0] = -1024
    return vol


@pytest.fixture
def dicom_series(tmp_path, ct_volume):
    """An oblique CT series written in shuffled order: (folder, per-slice geometry)."""
    slices = write_dicom_series(tmp_path / "series", ct_volume)
    return tmp_path / "series", slices


@pytest.fixture
def nifti_volume(tmp_path):
    """A (5, 4, 3) NIfTI with an oblique, flipped, anisotropic affine: (path, data)."""
    data = np.arange(60, dtype=np.float32).reshape(5, 4, 3)
    return write_nifti(tmp_path / "case01.nii.gz", data), data
