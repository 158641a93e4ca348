"""A run that differs from the exported graph's card is refused by name; missing runtimes name the extra."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from aaclip_med.cli import main
from aaclip_med.export import read_card
from aaclip_med.export.deployed import DeployedModel
from aaclip_med.export.deps import require
from aaclip_med.inference import InferenceOptions


def _infer(engine_runs, tmp_path, *extra):
    return main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--engine", "torch",
                 "--model", str(engine_runs / "torchscript"), "--no-progress", *extra])


@pytest.mark.parametrize(("extra", "named"), [
    (["--class-name", "liver"], "class_name: the exported graph 'scan', this run 'liver'"),
    (["--description", "a liver"], "description: the exported graph 'scan', this run 'a liver'"),
    (["--modality", "mri"], "modality: the exported graph 'ct', this run 'mri'"),
    (["--domain", "industrial"], "domain: the exported graph 'medical', this run 'industrial'"),
    (["--image-size", "224"], "--image-size: the exported graph 112, this run 224"),
    (["--backbone", "ViT-B-16"], "--backbone: the exported graph 'aaclip-tiny', this run 'ViT-B-16'"),
    (["--backbone-weights", "openai"], "--backbone-weights: the exported graph 'random', this run 'openai'"),
    (["--quick-gelu"], "--quick-gelu: the exported graph's activations are fixed in it"),
    (["--precision", "bf16"], "precision: the exported graph 'fp32', this run 'bf16'"),
])
def test_card_mismatch_is_refused(engine_runs, tmp_path, capsys, extra, named):
    assert _infer(engine_runs, tmp_path, *extra) == 1
    assert named in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_engine_must_fit_the_format(engine_runs, tmp_path, capsys):
    assert main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--engine", "torch",
                 "--model", str(engine_runs / "onnx")]) == 1
    assert "--engine torch: cannot run the onnx graph" in capsys.readouterr().err
    assert main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--engine", "openvino"]) == 1
    assert "give --model DIR" in capsys.readouterr().err


def test_card_defaults_fill_the_options(engine_runs):
    model = DeployedModel(engine_runs / "torchscript", "torch")
    options = model.fill_options(InferenceOptions())
    assert (options.class_name, options.description, options.modality, options.domain, options.device) == (
        "scan", "scan", "ct", "medical", "cpu")
    assert model.fill_options(InferenceOptions(class_name="scan", modality="ct")).class_name == "scan"
    with pytest.raises(ValueError, match="device='cuda': the torch engine runs on the CPU; drop device"):
        model.to("cuda")
    assert model.recorded_identity["backbone"] == "aaclip-tiny"


def test_broken_card_is_named(engine_runs, tmp_path):
    folder = tmp_path / "graph"
    shutil.copytree(engine_runs / "torchscript", folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({k: v for k, v in card.items() if k != "identity"}))
    with pytest.raises(ValueError, match=r"card.json: not an aaclip-med model card .*missing \['identity'\]"):
        read_card(folder)
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "model.ts").unlink()
    with pytest.raises(FileNotFoundError, match=r"model.ts: missing \(.*card.json names it\)"):
        DeployedModel(folder, "torch")


def test_missing_runtime_names_the_extra(monkeypatch, capsys, engine_runs, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what Python does when a package is not installed
    with pytest.raises(ImportError, match=r"--engine onnxruntime needs onnxruntime: pip install 'aaclip-med\[export\]'"):
        require("onnxruntime", "--engine onnxruntime")
    assert main(["infer", str(engine_runs / "cases"), "--out", str(tmp_path / "out"), "--engine", "onnxruntime",
                 "--model", str(engine_runs / "onnx")]) == 1
    assert capsys.readouterr().err.strip().endswith("pip install 'aaclip-med[export]'")


def test_export_refuses_int8_without_references(tmp_path, capsys):
    assert main(["export", "--format", "onnx", "--precision", "int8", "--out", str(tmp_path / "g"),
                 "--backbone", "aaclip-tiny", "--backbone-weights", "random"]) == 1
    assert "--precision int8: needs --calibration-data DIR" in capsys.readouterr().err
    assert main(["export", "--format", "torchscript", "--precision", "int8", "--calibration-data", str(tmp_path),
                 "--out", str(tmp_path / "g"), "--backbone", "aaclip-tiny", "--backbone-weights", "random"]) == 1
    assert "--precision int8: is for --format onnx or openvino" in capsys.readouterr().err


def test_reference_memory_needs_the_torch_engine(engine_runs):
    # the memory is searched with patch features, which an exported graph does not output
    model = DeployedModel(engine_runs / "torchscript", "torch")
    with pytest.raises(ValueError, match="references=.*: needs the torch engine"):
        InferenceOptions(references="refs.safetensors").check_model(model)


@pytest.mark.parametrize("bits, warned", [(8, True), (None, True), (7, False)])
def test_int8_graph_of_8_bit_weights_is_named_on_a_cpu_without_int8_dot_products(monkeypatch, caplog, tmp_path, bits,
                                                                                    warned):
    import aaclip_med.precision as precision
    from aaclip_med.export.deployed import DeployedModel

    monkeypatch.setattr(precision, "cpu_has_int8_dot", lambda: False)
    model = object.__new__(DeployedModel)  # only the card matters to the check
    model.folder, model.precision = tmp_path, "int8"
    model.card = {"int8": {"weight_bits": bits} if bits else {}}
    with caplog.at_level("WARNING", logger="aaclip_med.export.deployed"):
        model._warn_int8_saturation()
    assert ("no int8 dot products" in caplog.text) is warned
    if warned:
        assert str(tmp_path) in caplog.text and ("8-bit weights" in caplog.text or "unrecorded width" in caplog.text)
    monkeypatch.setattr(precision, "cpu_has_int8_dot", lambda: True)
    caplog.clear()
    model._warn_int8_saturation()
    assert "no int8 dot products" not in caplog.text
