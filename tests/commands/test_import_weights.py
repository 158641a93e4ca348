"""``aaclip-med import-weights`` converts two small files: no CLIP is built, nothing random is announced,
and an unsafe file is refused with one line of our own."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from aaclip_med.cli import main
from aaclip_med.model import load_adapters, read_adapter_file
from tests.model.test_checkpoint import _perturbed_model, _write_public_format


def _no_clip(*args, **kwargs):
    raise AssertionError("import-weights built a CLIP")


def test_conversion_builds_no_clip_and_warns_nothing(tmp_path, monkeypatch, caplog, capsys):
    import aaclip_med.model.aaclip as aaclip_module
    import aaclip_med.model.backbone as backbone

    source = _perturbed_model(seed=3)
    _write_public_format(source, tmp_path)
    monkeypatch.setattr(backbone, "build_clip", _no_clip)
    monkeypatch.setattr(aaclip_module, "build_clip", _no_clip)
    out = tmp_path / "adapters.safetensors"
    caplog.clear()  # building the source model above announced its random CLIP
    with caplog.at_level(logging.INFO):
        code = main(["import-weights", "--text-adapter", str(tmp_path / "text_adapter.pth"), "--image-adapter",
                     str(tmp_path / "image_adapter.pth"), "--out", str(out), "--backbone", "aaclip-tiny"])
    assert code == 0, capsys.readouterr().err
    assert "RANDOM" not in caplog.text and "initialized randomly" not in caplog.text
    monkeypatch.undo()
    assert read_adapter_file(out)[0]["config"]["pretrained"] is None  # the backbone preset's weights at load time
    converted = load_adapters(out, pretrained="random")
    for key, value in source.adapter_state_dict().items():
        torch.testing.assert_close(converted.adapter_state_dict()[key], value, rtol=0, atol=0)


def test_relu_checkpoints_convert_with_both_head_activations(tmp_path, capsys):
    source = _perturbed_model(seed=5, head_activation=True, det_head_activation=True)
    _write_public_format(source, tmp_path, relu_heads=True)
    out = tmp_path / "adapters.safetensors"
    code = main(["import-weights", "--text-adapter", str(tmp_path / "text_adapter.pth"), "--image-adapter",
                 str(tmp_path / "image_adapter.pth"), "--out", str(out), "--backbone", "aaclip-tiny"])
    assert code == 0, capsys.readouterr().err
    config = read_adapter_file(out)[0]["config"]
    assert config["head_activation"] is True and config["det_head_activation"] is True
    converted = load_adapters(out, pretrained="random")
    for key, value in source.adapter_state_dict().items():
        torch.testing.assert_close(converted.adapter_state_dict()[key], value, rtol=0, atol=0)


def test_files_of_another_backbone_are_refused(tmp_path, capsys):
    _write_public_format(_perturbed_model(seed=3), tmp_path)
    code = main(["import-weights", "--text-adapter", str(tmp_path / "text_adapter.pth"), "--image-adapter",
                 str(tmp_path / "image_adapter.pth"), "--out", str(tmp_path / "a.safetensors"), "--backbone", "ViT-B-16"])
    err = capsys.readouterr().err
    assert code == 1 and "do not fit ViT-B-16" in err and not (tmp_path / "a.safetensors").exists()


class _Payload:
    def __reduce__(self):
        return os.getcwd, ()


def test_crafted_pickle_is_refused_in_one_line(tmp_path, capsys):
    torch.save({"text_adapter": {"0.fc.0.weight": torch.zeros(2)}, "payload": _Payload()}, tmp_path / "text_adapter.pth")
    torch.save({"image_adapter": {}}, tmp_path / "image_adapter.pth")
    code = main(["import-weights", "--text-adapter", str(tmp_path / "text_adapter.pth"), "--image-adapter",
                 str(tmp_path / "image_adapter.pth"), "--out", str(tmp_path / "a.safetensors"), "--backbone", "aaclip-tiny"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "Refusing to load" in err and "text_adapter.pth" in err
    assert "weights_only" not in err and "trust" not in err


@pytest.mark.parametrize("missing", ["text", "image"])
def test_missing_file_named(tmp_path, capsys, missing):
    _write_public_format(_perturbed_model(seed=3), tmp_path)
    (tmp_path / f"{missing}_adapter.pth").unlink()
    code = main(["import-weights", "--text-adapter", str(tmp_path / "text_adapter.pth"), "--image-adapter",
                 str(tmp_path / "image_adapter.pth"), "--out", str(tmp_path / "a.safetensors")])
    assert code == 1 and f"--{missing}-adapter" in capsys.readouterr().err
