"""The bundle's export commands as the README shows them: model.pt, ckpt_export to TorchScript, and
inference with a graph written by ``aaclip-med export`` (tiny backbone, trained by the README's commands)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from aaclip_med.bundle_support import AnomalyMapNet
from aaclip_med.model import load_adapters

from .commands import run_command

TINY_INPUT = ["--input_shape", "[1,3,112,112]"]  # the metadata's 518 x 518 is for ViT-L-14-336


@pytest.fixture(scope="module")
def exported_ts(bundle: Path, folders, trained: Path, tiny: list[str]) -> Path:
    run_command("save_checkpoint", bundle, folders, tiny)
    assert (trained / "model.pt").is_file()
    run_command("ckpt_export", bundle, folders, tiny + TINY_INPUT)
    return trained / "model.ts"


def test_ckpt_export_traces_the_trained_network(exported_ts: Path, trained: Path, tiny: list[str]):
    extra = {"metadata.json": "", "inference.json": ""}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.10 announces TorchScript's deprecation
        traced = torch.jit.load(str(exported_ts), _extra_files=extra)
        weights = tiny[tiny.index("--backbone_weights") + 1]
        network = AnomalyMapNet(load_adapters(trained / "adapters.safetensors", pretrained=weights), "scan").eval()
        images = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
        expected = network(images)
        got = traced(images)  # batch 2 through a graph traced at batch 1
    assert got.shape == expected.shape == (2, 1, 112, 112)
    assert (got - expected).abs().max() <= 1e-4
    assert json.loads(extra["metadata.json"])["network_data_format"]["outputs"]["pred"]["num_channels"] == 1
    assert "network_def" in json.loads(extra["inference.json"])
    # the text tower is not in the exported graph: only the image side and the anchors
    names = {name for name, _ in traced.named_parameters()} | {name for name, _ in traced.named_buffers()}
    assert "anchors" in names and not any("token_embedding" in name or "text_" in name for name in names)


def test_inference_with_an_exported_graph(bundle: Path, folders, trained: Path, tiny: list[str], inferred: Path):
    weights = tiny[tiny.index("--backbone_weights") + 1]
    export = [sys.executable, "-m", "aaclip_med.cli", "export", "--format", "onnx", "--out", str(trained / "exported"),
              "--weights", str(trained / "adapters.safetensors"), "--backbone-weights", weights,
              "--modality", "mri", "--class-name", "scan", "--domain", "medical"]
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(export, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = bundle / "eval_exported"
    run_command("inference_exported", bundle, folders, tiny + ["--output_dir", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done"], summary["failed"]) == (3, [])
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == {"name": "onnxruntime", "format": "onnx", "precision": "fp32"}
    assert run["weights_sha256"] == json.loads((inferred / "run.json").read_text())["weights_sha256"]
    # the torch run used the CPU's bf16 ('auto'): the same maps up to bf16 rounding
    torch_map = nib.load(inferred / "brain_anomaly.nii.gz").get_fdata()
    onnx_map = nib.load(out / "brain_anomaly.nii.gz").get_fdata()
    assert onnx_map.shape == torch_map.shape
    assert np.corrcoef(onnx_map.ravel(), torch_map.ravel())[0, 1] > 0.99
