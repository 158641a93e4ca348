"""Every format exported from the tiny backbone reproduces the torch graph, in every engine that runs it."""

from __future__ import annotations

import json

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest

from aaclip_med.model.graph import OUTPUT_NAMES

FP32_RUNS = [("torch", "torchscript"), ("onnxruntime", "onnx"), ("openvino", "onnx"), ("openvino", "openvino")]


@pytest.mark.parametrize(("engine", "folder"), FP32_RUNS)
def test_fp32_graph_reproduces_torch(engine_runs, engine, folder):
    outputs = np.load(engine_runs / "outputs.npz")
    assert outputs["reference:anomaly_map"].shape == (3, 112, 112)
    assert outputs["reference:image_score"].shape == (3,)  # a batch of 3 through a graph traced at batch 1
    for name in OUTPUT_NAMES:
        reference, got = outputs[f"reference:{name}"], outputs[f"{engine}:{folder}:{name}"]
        assert got.shape == reference.shape, name
        assert np.abs(got - reference).max() <= 1e-4, (name, np.abs(got - reference).max())
    assert outputs["reference:anomaly_map"].std() > 0.1  # the comparison is not between constant maps


def test_level_maps_sum_to_the_map(engine_runs):
    outputs = np.load(engine_runs / "outputs.npz")
    levels = outputs["reference:level_maps"]
    assert levels.shape == (3, 4, 112, 112)
    np.testing.assert_allclose(levels.sum(axis=1), outputs["reference:anomaly_map"], atol=1e-5)
    card = json.loads((engine_runs / "onnx" / "card.json").read_text())
    assert [o["name"] for o in card["outputs"]] == [*OUTPUT_NAMES, "level_maps"]
    assert card["outputs"][-1]["shape"] == ["batch", 4, 112, 112]


def test_card_identity(engine_runs):
    card = json.loads((engine_runs / "openvino" / "card.json").read_text())
    assert (card["format"], card["file"], card["precision"], card["opset"]) == ("openvino", "model.xml", "fp32", 17)
    identity = card["identity"]
    assert (identity["backbone"], identity["image_size"], identity["class_name"], identity["description"],
            identity["domain"], identity["preset"]) == ("aaclip-tiny", 112, "scan", "scan", "medical", "ct")
    assert identity["levels"] == [1, 2, 3, 4] and identity["random_weights"] is True
    assert card["inputs"] == [{"name": "image", "shape": ["batch", 3, 112, 112], "dtype": "float32",
                               "meaning": "CLIP-normalised image after the modality preset"}]
    assert card["versions"]["openvino"] and card["versions"]["torch"]
    assert (engine_runs / "openvino" / "model.bin").stat().st_size > 100_000  # fp32 weights, not fp16
    assert json.loads((engine_runs / "torchscript" / "card.json").read_text())["opset"] is None


def test_int8_agreement_is_reported(engine_runs):
    card = json.loads((engine_runs / "int8" / "card.json").read_text())
    report = card["int8"]
    assert card["precision"] == "int8" and report["images"] == 4
    # the numbers themselves are checked on known inputs in test_agreement; here: defined for 4 images
    assert report["map_pearson"] > 0.99 and isinstance(report["score_spearman"], float)
    assert report["calibration_data"].endswith("normals")
    outputs = np.load(engine_runs / "outputs.npz")
    int8, reference = outputs["onnxruntime:int8:anomaly_map"], outputs["reference:anomaly_map"]
    assert 0 < np.abs(int8 - reference).max() < 1.0  # quantised (not the fp32 graph), and close to it
    log = json.loads((engine_runs / "cli.json").read_text())
    printed = next(entry["text"] for command, entry in log.items() if "int8" in command)
    assert f"map Pearson {report['map_pearson']}" in printed and "score Spearman" in printed


def _outputs(folder):
    nifti = nib.load(folder / "ct_anomaly.nii.gz")
    seg = hd.seg.segread(str(folder / "ct_seg.dcm"))
    pmap = pydicom.dcmread(str(folder / "ct_pmap.dcm"))
    return nifti, seg, pmap


@pytest.mark.parametrize(("engine", "folder"), [("torch", "torchscript"), ("onnxruntime", "onnx"), ("openvino", "openvino")])
def test_infer_engine_writes_the_torch_outputs(engine_runs, engine, folder):
    ref_nifti, ref_seg, ref_pmap = _outputs(engine_runs / "infer_reference")
    nifti, seg, pmap = _outputs(engine_runs / f"infer_{engine}_{folder}")
    np.testing.assert_allclose(nifti.affine, ref_nifti.affine)
    np.testing.assert_allclose(nifti.get_fdata(), ref_nifti.get_fdata(), atol=1e-4)
    mask = ref_seg.pixel_array
    assert 0 < mask.mean() < 1  # the threshold cuts the maps: voxels on both sides
    np.testing.assert_array_equal(seg.pixel_array, mask)
    ref_frames = np.frombuffer(ref_pmap.FloatPixelData, np.float32)
    np.testing.assert_allclose(np.frombuffer(pmap.FloatPixelData, np.float32), ref_frames, atol=1e-4)
    run = json.loads((engine_runs / f"infer_{engine}_{folder}" / "run.json").read_text())
    assert run["exported_model"] == {"folder": str(engine_runs / folder)}
    assert run["engine"] == {"name": engine, "format": folder, "precision": "fp32"}
    ref_scores = json.loads((engine_runs / "infer_reference" / "ct_scores.json").read_text())
    scores = json.loads((engine_runs / f"infer_{engine}_{folder}" / "ct_scores.json").read_text())
    for got, want in zip(scores["slices"], ref_scores["slices"], strict=True):
        assert got["image_score"] == pytest.approx(want["image_score"], abs=1e-4)
        assert got["global_score"] == pytest.approx(want["global_score"], abs=1e-5)
