"""The formats and engines are data: a new format is one registry entry plus its writer, a new engine
one entry plus its runner, and the CLI, the exporter and DeployedModel take them from there."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aaclip_med.cli import main
from aaclip_med.export import registry
from aaclip_med.export.deployed import DeployedModel
from aaclip_med.export.engines import torch_runner
from aaclip_med.export.formats import write_torchscript
from aaclip_med.model.graph import AnomalyGraph
from tests.conftest import make_tiny_model

MODEL = ["--backbone", "aaclip-tiny", "--image-size", "112", "--backbone-weights", "random", "--modality", "ct"]
WRITES: list[Path] = []


def write_traced(graph, path: Path, opset: int) -> None:
    """The new format's writer (a TorchScript file under another name, so the test can run it)."""
    WRITES.append(path)
    write_torchscript(graph, path, opset)


def run_traced(path: Path, threads: int):
    """The new engine's runner."""
    return torch_runner(path, threads)


@pytest.fixture
def traced_format(monkeypatch):
    here = __name__
    monkeypatch.setitem(registry.FORMATS, "traced", registry.ExportFormat(
        "traced", "model.traced", f"{here}:write_traced", engines=("traced-runner",), opset=False))
    monkeypatch.setitem(registry.ENGINES, "traced-runner", registry.Engine("traced-runner", f"{here}:run_traced"))
    WRITES.clear()


def test_a_new_format_is_one_entry_and_its_writer(traced_format, tmp_path):
    out = tmp_path / "graph"
    assert main(["export", "--format", "traced", "--out", str(out), *MODEL]) == 0
    assert WRITES and WRITES[0].name == "model.traced"
    card = json.loads((out / "card.json").read_text())
    assert (card["format"], card["file"], card["opset"], sorted(card["files"])) == (
        "traced", "model.traced", None, ["model.traced"])
    model = DeployedModel(out, "traced-runner")
    images = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = AnomalyGraph(make_tiny_model(seed=0, image_size=112), "scan", "medical").eval()(images)
    got = model(images, torch.zeros(0), "medical")
    np.testing.assert_allclose(got.anomaly_map.numpy(), expected[0].numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="engine='torch': cannot run the traced graph .* use engine traced-runner"):
        DeployedModel(out, "torch")


def test_the_cli_offers_the_registry(traced_format, capsys):
    for argv in (["export", "--help"], ["infer", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
    text = capsys.readouterr().out
    assert "{torchscript,onnx,openvino,traced}" in text and "{auto,torch,onnxruntime,openvino,traced-runner}" in text
    assert main(["export", "--format", "traced", "--precision", "int8", "--calibration-data", ".", "--out", "g",
                 *MODEL]) == 1
    assert "--precision int8: is for --format onnx or openvino" in capsys.readouterr().err


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"unknown export format 'tflite'; choose one of \['torchscript', 'onnx', 'openvino'\]"):
        registry.export_format("tflite")
    with pytest.raises(ValueError, match=r"unknown engine 'tensorrt'; choose one of \['torch', 'onnxruntime', 'openvino'\]"):
        registry.engine("tensorrt")
    assert registry.formats_of("openvino") == ["onnx", "openvino"] and registry.formats_of("torch") == ["torchscript"]
    assert [name for name, spec in registry.FORMATS.items() if spec.int8] == ["onnx", "openvino"]
