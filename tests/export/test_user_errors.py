"""What a user hits around exported graphs, each answered by one line naming the file and the problem:
an output folder that is not empty or not writable, int8 calibrated on one slice or on another
modality, a model folder with a deleted, cut-short or replaced model file or an edited card, and
run options that disagree with the card."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pydicom
import pytest

from aaclip_med.cli import main
from aaclip_med.export import read_card
from aaclip_med.export.deployed import DeployedModel
from aaclip_med.export.folder import check_export_folder
from tests._synthetic import write_dicom_series

MODEL = ["--backbone", "aaclip-tiny", "--image-size", "112", "--backbone-weights", "random"]


def _export(out, *extra):
    return main(["export", "--format", "torchscript", "--out", str(out), *MODEL, *extra])


def _copy(engine_runs, tmp_path, folder):
    target = tmp_path / folder
    shutil.copytree(engine_runs / folder, target)
    return target


def test_a_folder_holding_other_files_is_refused_before_the_model_is_built(tmp_path, capsys, monkeypatch):
    import aaclip_med.model

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    monkeypatch.setattr(aaclip_med.model, "build_aaclip", lambda *a, **k: pytest.fail("the model was built"))
    assert _export(out) == 1
    err = capsys.readouterr().err
    assert f"--out {out} is not empty and holds no earlier export: notes.txt" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_an_earlier_export_with_other_files_beside_it_is_refused(engine_runs, tmp_path):
    folder = _copy(engine_runs, tmp_path, "torchscript")
    (folder / "results.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"holds files that are not its earlier export's \(card.json\): results.csv"):
        check_export_folder(folder)


def test_a_read_only_folder_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    from aaclip_med import files

    out = tmp_path / "readonly"
    out.mkdir()
    real_access = files.os.access  # a read-only mount stops root too; file modes would not
    monkeypatch.setattr(files.os, "access", lambda p, mode, **kw: str(p) != str(out) and real_access(p, mode, **kw))
    assert _export(out) == 1
    assert f"--out {out}: the output folder is not writable" in capsys.readouterr().err
    assert list(out.iterdir()) == []


def test_an_earlier_export_is_replaced_whole(engine_runs, tmp_path, capsys):
    folder = _copy(engine_runs, tmp_path, "openvino")  # model.xml + model.bin + card.json
    assert _export(folder, "--modality", "ct") == 0
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "model.ts"]  # no IR left beside the new graph
    card = read_card(folder)
    assert card["format"] == "torchscript" and set(card["files"]) == {"model.ts"}
    assert card["files"]["model.ts"]["bytes"] == (folder / "model.ts").stat().st_size
    assert "exported fp32 torchscript graph of class 'scan'" in capsys.readouterr().out


def test_int8_on_one_slice_says_the_score_agreement_is_not_measured(engine_runs):
    card = read_card(engine_runs / "int8_one_slice")
    assert card["int8"]["images"] == 1 and card["int8"]["score_spearman"] is None
    log = json.loads((engine_runs / "cli.json").read_text())
    printed = next(entry["text"] for command, entry in log.items() if "int8_one_slice" in command)
    assert "int8 vs fp32 on 1 calibration slice(s)" in printed and "score Spearman not measured (needs 2 slices)" in printed


def test_one_calibration_slice_is_warned_about(tmp_path, caplog):
    from aaclip_med.export import reference_images
    from aaclip_med.inference import Predictor
    from tests.conftest import make_tiny_model

    write_dicom_series(tmp_path / "one" / "ct", np.zeros((1, 32, 30), np.int16))
    predictor = Predictor(make_tiny_model(image_size=112), "ct", device="cpu", precision="fp32")
    with caplog.at_level(logging.WARNING, logger="aaclip_med.export"):
        images = reference_images(predictor, [tmp_path / "one"])
    assert images.shape == (1, 3, 112, 112)
    assert "1 slice calibrates the int8 ranges; the agreement of the image scores with fp32 needs at least 2" in caplog.text


def test_calibration_data_of_another_modality_is_refused(tmp_path, capsys):
    normals = tmp_path / "normals"
    write_dicom_series(normals / "mr", np.zeros((2, 32, 30), np.int16))
    for path in (normals / "mr").iterdir():  # the same series, declared MR
        dataset = pydicom.dcmread(path)
        dataset.Modality = "MR"
        dataset.save_as(path)
    code = main(["export", "--format", "onnx", "--precision", "int8", "--calibration-data", str(normals),
                 "--modality", "ct", "--out", str(tmp_path / "g"), *MODEL])
    assert code == 1
    err = capsys.readouterr().err
    assert f"--calibration-data {normals / 'mr'}: DICOM Modality MR (mri), but the graph is exported for --modality ct" in err
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("damage", ["deleted", "truncated", "replaced"])
def test_a_damaged_model_file_is_named(engine_runs, tmp_path, capsys, damage):
    folder = _copy(engine_runs, tmp_path, "onnx")
    model = folder / "model.onnx"
    if damage == "deleted":
        model.unlink()
    elif damage == "truncated":
        data = model.read_bytes()
        model.write_bytes(data[: len(data) // 2])
    else:  # same size, other bytes
        data = bytearray(model.read_bytes())
        data[-10] ^= 0xFF
        model.write_bytes(bytes(data))
    expected = {"deleted": r"model.onnx: missing \(.*card.json names it\)",
                "truncated": r"model.onnx: \d+ bytes, the card records \d+ \(cut short or replaced since export\)",
                "replaced": r"model.onnx: its sha256 differs from the card's \(changed since export\)"}[damage]
    with pytest.raises((FileNotFoundError, ValueError), match=expected):
        DeployedModel(folder, "onnxruntime")  # refused before ONNX Runtime is loaded
    assert main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--engine", "onnxruntime",
                 "--model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aaclip-med infer: error: ") and str(model) in err, err
    assert not (tmp_path / "out").exists()


def test_an_edited_card_is_refused(engine_runs, tmp_path, capsys):
    folder = _copy(engine_runs, tmp_path, "torchscript")
    card = json.loads((folder / "card.json").read_text())
    card["identity"]["class_name"] = "liver"  # the graph's anchors are still the ones of 'scan'
    (folder / "card.json").write_text(json.dumps(card))
    assert main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'card.json'}: edited after export" in err, err


def test_a_card_of_the_first_version_still_loads(engine_runs, tmp_path):
    folder = _copy(engine_runs, tmp_path, "torchscript")
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k not in ("card_sha256", "files")}))
    assert DeployedModel(folder, "torch").precision == "fp32"


def test_every_option_that_differs_from_the_card_is_named(engine_runs, tmp_path, capsys):
    weights = tmp_path / "other.safetensors"
    weights.write_bytes(b"not the graph's adapters")
    code = main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--model",
                 str(engine_runs / "torchscript"), "--image-size", "224", "--backbone", "ViT-B-16", "--weights",
                 str(weights)])
    assert code == 1
    err = capsys.readouterr().err
    for line in ("--backbone: the exported graph 'aaclip-tiny', this run 'ViT-B-16'",
                 "--image-size: the exported graph 112, this run 224",
                 f"--weights: {weights} are not the adapters the graph was exported with (untrained adapters"):
        assert line in err, err
    assert "Drop them (the card sets the network), or export the graph again with them" in err
