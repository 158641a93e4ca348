"""Everything that loads ONNX Runtime or OpenVINO, run in a child process of the tests.

``python -m tests.export._engine_run WORK`` exports the tiny network in every format (and int8),
runs each folder with each engine that can run it (and int8 calibrated on a single slice), and runs
``aaclip-med infer`` on a DICOM series
with every engine; the test process only reads what it wrote. The native runtimes never share the
pytest process with the other tests' libraries, so a fault in one of them fails these tests
instead of ending the whole test run.

Writes into WORK: ``<format>/`` export folders, ``outputs.npz`` (key ``<engine>:<folder>:<output>``
plus ``reference:<output>``, the torch graph's outputs), ``infer_<engine>_<folder>/`` outputs and
``cli.json`` (exit code and printed text of each command).
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

from aaclip_med.cli import main
from aaclip_med.export.deployed import DeployedModel
from aaclip_med.model.graph import OUTPUT_NAMES, AnomalyGraph
from tests.conftest import make_tiny_model

SIZE = 112  # the tiny backbone's size in the tests (bundle and CLI tests use it too)
MODEL = ["--backbone", "aaclip-tiny", "--image-size", str(SIZE), "--modality", "ct"]
# folder -> engines that can run it
RUNS = {"torchscript": ["torch"], "onnx": ["onnxruntime", "openvino"], "openvino": ["openvino"], "int8": ["onnxruntime"]}


def _cli(argv: list[str], log: dict) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(argv)
    log[" ".join(argv)] = {"code": code, "text": out.getvalue()}
    if code != 0:  # stop at the first failing command, with what it printed
        raise SystemExit(f"aaclip-med {' '.join(argv)} exited {code}:\n{out.getvalue()[-4000:]}")


def _median_map(folder: Path) -> str:
    import nibabel as nib

    return f"{float(np.median(nib.load(next(folder.glob('*_anomaly.nii.gz'))).get_fdata())):.4f}"


def run(work: Path, series: str, normals: str, one_normal: str) -> None:
    log: dict = {}
    model = [*MODEL, "--backbone-weights", "random"]  # with the seed 0 of the CLI: make_tiny_model(seed=0)
    for fmt in ("torchscript", "onnx", "openvino"):
        _cli(["export", "--format", fmt, "--out", str(work / fmt), "--level-maps", *model], log)
    _cli(["export", "--format", "onnx", "--precision", "int8", "--calibration-data", normals,
          "--out", str(work / "int8"), *model], log)
    _cli(["export", "--format", "onnx", "--precision", "int8", "--calibration-data", one_normal,
          "--out", str(work / "int8_one_slice"), *model], log)
    images = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    graph = AnomalyGraph(make_tiny_model(seed=0, image_size=SIZE), "scan", "medical", level_maps=True).eval()
    arrays = {}
    with torch.no_grad():
        for name, value in zip((*OUTPUT_NAMES, "level_maps"), graph(images)):
            arrays[f"reference:{name}"] = value.numpy()
    for folder, engines in RUNS.items():
        for engine in engines:
            deployed = DeployedModel(work / folder, engine)
            for name, value in zip(OUTPUT_NAMES, deployed(images, torch.zeros(0), "medical")):
                arrays[f"{engine}:{folder}:{name}"] = value.numpy()
    np.savez(work / "outputs.npz", **arrays)
    reference = [*model, "--precision", "fp32", series, "--no-progress"]
    _cli(["infer", "--out", str(work / "infer_first"), *reference], log)
    # a threshold in the middle of the maps: the SEG masks have voxels on both sides of it
    common = [series, "--dicom-out", "--threshold", _median_map(work / "infer_first"), "--no-progress"]
    _cli(["infer", "--out", str(work / "infer_reference"), *reference, *common[1:]], log)
    for folder, engine in (("torchscript", "torch"), ("onnx", "onnxruntime"), ("openvino", "openvino")):
        _cli(["infer", "--out", str(work / f"infer_{engine}_{folder}"), "--engine", engine, "--model",
              str(work / folder), *common], log)
    _cli(["infer", "--out", str(work / "infer_auto_onnx"), "--model", str(work / "onnx"), *common], log)  # --engine auto
    (work / "cli.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    run(Path(sys.argv[1]), *sys.argv[2:])
