import dataclasses

import pytest
import torch

from aaclip_med.adaptation import check_references, load_references, save_references

from .conftest import model_identity


def test_round_trip_keeps_features_stats_and_identity(bank, tmp_path):
    path = save_references(bank, tmp_path / "refs.safetensors")
    loaded = load_references(path)
    assert loaded.model == bank.model and set(loaded.classes) == {"scan"}
    before, after = bank.classes["scan"], loaded.classes["scan"]
    assert after.stats == before.stats and after.modality == "ct" and after.domain == "medical"
    for a, b in zip(before.levels, after.levels, strict=True):
        assert b.dtype == torch.float16 and torch.equal(a, b)


def test_other_backbone_or_size_is_refused_naming_each_difference(bank, predictor):
    identity = model_identity(predictor.model)
    assert check_references(bank, identity, "scan", "ct", "medical") is bank.classes["scan"]
    other = identity | {"backbone": "ViT-B-16", "image_size": 224}
    with pytest.raises(ValueError) as err:
        check_references(bank, other, "scan", source="refs.safetensors")
    text = str(err.value)
    assert "refs.safetensors was built with other settings" in text
    assert "backbone: references 'aaclip-tiny', this run 'ViT-B-16'" in text
    assert "image_size: references 112, this run 224" in text
    with pytest.raises(ValueError, match="modality: references 'ct', this run 'mri'"):
        check_references(bank, identity, "scan", "mri")
    with pytest.raises(ValueError, match="slice_axis: references 'acquisition', this run 'coronal'"):
        check_references(bank, identity | {"slice_axis": "coronal"}, "scan")


def test_class_without_references_is_refused(bank, predictor):
    with pytest.raises(ValueError, match=r"has no references of class 'liver' \(classes: \['scan'\]\)"):
        check_references(bank, model_identity(predictor.model), "liver")


def test_a_file_that_is_not_a_memory_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "adapters.safetensors"))
    with pytest.raises(ValueError, match="not an aaclip-med reference memory"):
        load_references(tmp_path / "adapters.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_references(tmp_path / "missing.safetensors")


def test_an_older_memory_of_trained_adapters_is_checked_by_their_file(bank, caplog):
    """Format-1 files lack the adapters' tensor hash: with an adapters file its sha256 pins them (warned);
    with untrained adapters nothing does, so the file is refused."""
    identity = dict(bank.model)
    older = dataclasses.replace(bank, model={k: v for k, v in bank.model.items()
                                             if k not in ("adapter_tensors_sha256", "identity_version")})
    trained = dataclasses.replace(older, model=older.model | {"weights_sha256": "a" * 64})
    check_references(trained, identity | {"weights_sha256": "a" * 64}, "scan")
    assert "records no adapter_tensors_sha256" in caplog.text
    with pytest.raises(ValueError, match="not recorded in the file: adapter_tensors_sha256"):
        check_references(older, identity, "scan")
