"""``--engine auto``: the rule table, what a run records of its choice, and the graph cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from aaclip_med.cli import main
from aaclip_med.export.choice import (
    PIN_ENV,
    RULES,
    EngineChoice,
    Machine,
    choose_engine,
    choose_folder_engine,
)
from aaclip_med.inference import InferenceOptions
from tests._synthetic import write_dicom_series

ROOT = Path(__file__).resolve().parents[2]
EVERYTHING = frozenset({"onnx", "onnxruntime", "openvino"})
TINY = ["--backbone", "aaclip-tiny", "--image-size", "112", "--backbone-weights", "random", "--no-progress"]


AVX512, AVX2 = frozenset({"avx2", "fma", "avx512f"}), frozenset({"avx2", "fma"})


@pytest.fixture(autouse=True)
def unpinned(monkeypatch):
    """These tests read the rule itself: the suite's pin of ``auto`` to torch (tests/conftest.py) is lifted."""
    monkeypatch.delenv(PIN_ENV, raising=False)


def _machine(onednn: bool = True, installed=EVERYTHING, device: str = "cpu", flags=AVX512) -> Machine:
    return Machine(device=device, cpu_flags=flags, onednn=onednn, installed=installed)


@pytest.mark.parametrize(("precision", "machine", "engine", "fmt", "reason"), [
    ("fp32", _machine(onednn=True), "torch", None, "oneDNN-blocked weights"),
    ("fp32", _machine(onednn=True, flags=AVX2), "openvino", "openvino", "without AVX-512"),
    ("fp32", _machine(onednn=False), "openvino", "openvino", "a torch without oneDNN"),
    ("fp32", _machine(onednn=False, installed=frozenset({"onnx", "onnxruntime"})), "torch", None, "without OpenVINO"),
    ("fp32", _machine(flags=AVX2, installed=frozenset({"onnx", "onnxruntime"})), "torch", None, "without OpenVINO"),
    ("bf16", _machine(), "torch", None, "bf16: the exported graphs run in fp32 only"),
    ("fp16", _machine(), "torch", None, "fp16: the exported graphs run in fp32 only"),
    ("int8", _machine(onednn=False), "torch", None, "need no calibration"),
    ("fp32", _machine(onednn=False, device="cuda"), "torch", None, "the run is on cuda"),
])
def test_each_row_of_the_rule(precision, machine, engine, fmt, reason):
    choice = choose_engine(precision, machine)
    assert (choice.engine, choice.fmt, choice.precision) == (engine, fmt, precision)
    assert reason in choice.reason


def test_rows_are_read_in_order_and_blockers_come_first():
    assert len(RULES) == 5
    blocked = choose_engine("fp32", _machine(onednn=False), blockers=["a reference memory (--references) ..."])
    assert blocked.engine == "torch" and blocked.reason.startswith("a reference memory")


def test_a_folder_runs_on_the_first_installed_engine_of_its_format():
    assert choose_folder_engine("onnx", EVERYTHING).engine == "onnxruntime"
    assert choose_folder_engine("onnx", {"openvino"}).engine == "openvino"
    assert choose_folder_engine("torchscript", ()).engine == "torch"
    with pytest.raises(ImportError, match=r"no installed engine runs the openvino graph .*aaclip-med\[export\]"):
        choose_folder_engine("openvino", {"onnxruntime"})


@pytest.mark.parametrize(("options", "several", "reason"), [
    (InferenceOptions(modality="ct", references="refs.safetensors"), False, "reference memory (--references)"),
    (InferenceOptions(modality="ct"), True, "a manifest run scores several classes"),
    (InferenceOptions(), False, "the domain is picked per source"),
])
def test_runs_a_graph_cannot_honour_stay_on_torch(options, several, reason):
    from aaclip_med.export.auto import decide

    choice = decide(options.replace(precision="fp32", device="cpu"), several, machine=_machine(onednn=False))
    assert choice.engine == "torch" and reason in choice.reason
    assert decide(InferenceOptions(modality="ct", precision="fp32", device="cpu"),
                  machine=_machine(onednn=False)).engine == "openvino"


def test_a_default_run_records_and_logs_the_engine_and_why(tmp_path, caplog, graph_cache, monkeypatch):
    from aaclip_med.export.auto import current_machine

    series = write_dicom_series(tmp_path / "cases" / "ct", np.zeros((2, 32, 30), np.int16))
    assert series
    caplog.set_level("INFO", logger="aaclip_med")
    expected = choose_engine("fp32", current_machine("cpu"))
    if expected.engine != "torch":  # this machine's rule exports a graph (tested by the cached runs below)
        monkeypatch.setenv(PIN_ENV, "torch")
        expected = EngineChoice("torch", None, "fp32", f"pinned by ${PIN_ENV}")
    assert main(["infer", str(tmp_path / "cases"), "--out", str(tmp_path / "out"), "--modality", "ct",
                 "--precision", "fp32", *TINY]) == 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["engine"] == {"name": "torch", "format": None}  # what resume compares, as before
    assert run["engine_choice"] == EngineChoice("torch", None, "fp32", expected.reason).record()
    assert run["engine_choice"]["requested"] == "auto"
    assert f"engine torch (--engine auto: {expected.reason})" in caplog.text
    assert not any(Path(graph_cache).iterdir())  # torch exports nothing


def test_the_site_pin_decides_auto_but_not_what_a_graph_cannot_do(monkeypatch):
    from aaclip_med.errors import ParameterError
    from aaclip_med.export.auto import decide

    options = InferenceOptions(modality="ct", precision="fp32", device="cpu")
    assert choose_engine("fp32", _machine(), pinned="openvino") == EngineChoice(
        "openvino", "openvino", "fp32", f"pinned by ${PIN_ENV}")
    assert choose_engine("fp32", _machine(flags=AVX2), pinned="onnxruntime").fmt == "onnx"
    assert choose_engine("fp32", _machine(flags=AVX2), pinned="torch").engine == "torch"
    bf16 = choose_engine("bf16", _machine(), pinned="openvino")
    assert bf16.engine == "torch" and "bf16 runs on torch only" in bf16.reason
    monkeypatch.setenv(PIN_ENV, "onnxruntime")
    assert decide(options, machine=_machine()).engine == "onnxruntime"
    assert decide(options.replace(references="refs.safetensors"), machine=_machine()).engine == "torch"
    monkeypatch.setenv(PIN_ENV, "tensorrt")
    with pytest.raises(ParameterError, match=r"tensorrt.*\$AACLIP_MED_ENGINE.*names no engine"):
        decide(options, machine=_machine())


def test_engine_torch_is_recorded_as_requested(tmp_path):
    write_dicom_series(tmp_path / "cases" / "ct", np.zeros((2, 32, 30), np.int16))
    assert main(["infer", str(tmp_path / "cases"), "--out", str(tmp_path / "out"), "--modality", "ct",
                 "--engine", "torch", *TINY]) == 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["engine_choice"]["requested"] == "torch" and run["engine_choice"]["reason"] == "requested by --engine"


@pytest.fixture(scope="module")
def cached_runs(tmp_path_factory):
    """WORK of ``python -m tests.export._auto_run`` with the rule forced to ONNX Runtime, in a child process
    (the native runtime stays out of the test process), its cache in a temporary folder."""
    work = tmp_path_factory.mktemp("auto")
    rng = np.random.default_rng(1)
    write_dicom_series(work / "cases" / "ct", rng.integers(-200, 200, (3, 32, 30)).astype(np.int16))
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore",
               AACLIP_MED_CACHE=str(work / "cache"))
    env.pop(PIN_ENV, None)  # the suite's pin would keep auto on torch
    proc = subprocess.run([sys.executable, "-m", "tests.export._auto_run", str(work), str(work / "cases"),
                           "onnxruntime", "onnx"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"auto run failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-6000:]}")
    return work, json.loads((work / "auto.json").read_text())


def _exported(entry: dict) -> bool:
    return any("exported the onnx graph for --engine auto" in line for line in entry["log"])


def test_auto_exports_into_the_cache_and_records_it(cached_runs):
    work, log = cached_runs
    assert log["first"]["code"] == 0 and _exported(log["first"])
    assert Path(log["entry"]).parent == work / "cache" / "graphs"
    assert not [p for p in (work / "cache" / "graphs").iterdir() if p.name.startswith(".tmp-")]  # staging removed
    run = json.loads((work / "first" / "run.json").read_text())
    assert run["engine"] == {"name": "onnxruntime", "format": "onnx", "precision": "fp32"}
    assert run["engine_choice"] == {"name": "onnxruntime", "requested": "auto", "reason": "forced by the test to "
                                    "onnxruntime", "format": "onnx", "precision": "fp32", "cache": log["entry"]}
    assert any(line == f"INFO engine onnxruntime (--engine auto: forced by the test to onnxruntime, graph "
               f"{log['entry']})" for line in log["first"]["log"])


def test_a_second_run_reuses_the_cached_graph(cached_runs):
    _, log = cached_runs
    assert log["second"]["code"] == 0 and not _exported(log["second"])
    assert f"INFO cached onnx graph {log['entry']}" in log["second"]["log"]


def test_a_graph_of_another_identity_is_rebuilt_naming_the_difference(cached_runs):
    _, log = cached_runs
    assert log["export_other"]["code"] == 0 and log["foreign"]["code"] == 0
    warnings = [line for line in log["foreign"]["log"] if line.startswith("WARNING the cached graph")]
    assert len(warnings) == 1 and "description: cached graph 'another text', this run 'scan'" in warnings[0]
    assert _exported(log["foreign"])


def test_a_cut_short_model_file_is_rebuilt(cached_runs):
    _, log = cached_runs
    warnings = [line for line in log["cut_short"]["log"] if line.startswith("WARNING the cached graph")]
    assert len(warnings) == 1 and "model.onnx: 1000 bytes, the card records" in warnings[0]
    assert log["cut_short"]["code"] == 0 and _exported(log["cut_short"])


def test_the_cached_fp32_graph_matches_torch(cached_runs):
    work, log = cached_runs
    assert log["torch"]["code"] == 0
    for name in ("first", "second", "foreign", "cut_short"):
        graph = nib.load(next((work / name).glob("*_anomaly.nii.gz"))).get_fdata()
        torch_map = nib.load(next((work / "torch").glob("*_anomaly.nii.gz"))).get_fdata()
        assert graph.shape == torch_map.shape and np.ptp(torch_map) > 0
        np.testing.assert_allclose(graph, torch_map, atol=1e-4, rtol=0)


def test_resuming_with_another_engine_is_refused_naming_it(cached_runs):
    _, log = cached_runs
    assert log["resume_torch"]["code"] == 1
    assert "engine.name: finished work 'onnxruntime', this run 'torch'" in log["resume_torch"]["text"]


def test_a_cache_that_cannot_be_written_runs_torch_saying_why(tmp_path, monkeypatch, caplog):
    from aaclip_med.export import choice

    monkeypatch.setattr(choice, "RULES", (choice.Rule(("fp32",), "openvino", "forced", fmt="openvino"),))
    (tmp_path / "not_a_folder").write_text("x")
    write_dicom_series(tmp_path / "cases" / "ct", np.zeros((2, 32, 30), np.int16))
    assert main(["infer", str(tmp_path / "cases"), "--out", str(tmp_path / "out"), "--modality", "ct",
                 "--precision", "fp32", "--graph-cache", str(tmp_path / "not_a_folder"), *TINY]) == 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["engine"]["name"] == "torch" and run["engine_choice"]["name"] == "torch"
    assert run["engine_choice"]["reason"].startswith("the graph cache cannot be written")
    assert "torch instead of openvino" in caplog.text


def test_auto_runs_a_model_folder_on_the_first_installed_engine_of_its_format(engine_runs):
    run = json.loads((engine_runs / "infer_auto_onnx" / "run.json").read_text())
    assert run["engine"] == {"name": "onnxruntime", "format": "onnx", "precision": "fp32"}
    assert run["engine_choice"]["requested"] == "auto" and run["engine_choice"]["cache"] is None
    assert "first installed engine that runs onnx graphs (of onnxruntime, openvino)" in run["engine_choice"]["reason"]
    reference = nib.load(next((engine_runs / "infer_onnxruntime_onnx").glob("*_anomaly.nii.gz"))).get_fdata()
    auto = nib.load(next((engine_runs / "infer_auto_onnx").glob("*_anomaly.nii.gz"))).get_fdata()
    np.testing.assert_array_equal(auto, reference)


def test_a_row_can_ask_for_flags_present_and_absent():
    from aaclip_med.export.choice import Rule

    rows = (Rule(("fp32",), "openvino", "no AVX-512", fmt="openvino", without=("avx512f",)),
            Rule(("fp32",), "torch", "AVX-512 with VNNI", flags=("avx512f", "avx512_vnni")),
            Rule(("fp32",), "onnxruntime", "the rest", fmt="onnx"))
    assert choose_engine("fp32", _machine(flags=AVX2), rules=rows).engine == "openvino"
    assert choose_engine("fp32", _machine(flags=AVX512 | {"avx512_vnni"}), rules=rows).engine == "torch"
    assert choose_engine("fp32", _machine(flags=AVX512), rules=rows).engine == "onnxruntime"
