"""The one reader of an adapters file's metadata: what it returns and what it refuses."""

from __future__ import annotations

import json
import zipfile

import pytest

from aaclip_med.model.adapter_file import CheckpointError, read_adapter_metadata


def test_metadata_round_trip(tmp_path):
    from aaclip_med.model import save_adapters
    from tests.conftest import make_tiny_model

    model = make_tiny_model(image_size=28)
    path = save_adapters(model, tmp_path / "a.safetensors", extra={"stages": [1]})
    path.with_suffix(".json").unlink()  # the header alone is enough
    meta = read_adapter_metadata(path)
    assert meta["config"] == model.config.to_dict() and meta["extra"] == {"stages": [1]}
    assert meta["format_version"] == 1


def test_refusals_name_the_file_and_the_way_out(tmp_path):
    with pytest.raises(CheckpointError, match="missing.safetensors: no such file"):
        read_adapter_metadata(tmp_path / "missing.safetensors")
    pth = tmp_path / "image_adapter.pth"
    with zipfile.ZipFile(pth, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(CheckpointError, match=r"image_adapter.pth is not a readable safetensors file \(it looks like a "
                                              r"PyTorch zip checkpoint\).*aaclip-med import-weights"):
        read_adapter_metadata(pth)


def test_foreign_or_newer_files_refused(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(plain))
    with pytest.raises(CheckpointError, match="plain.safetensors has no AA-CLIP config"):
        read_adapter_metadata(plain)
    newer = tmp_path / "newer.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(newer),
              metadata={"aaclip_med": json.dumps({"format_version": 9, "config": {}})})
    with pytest.raises(CheckpointError, match="format version 9; this aaclip-med reads <= 1"):
        read_adapter_metadata(newer)
