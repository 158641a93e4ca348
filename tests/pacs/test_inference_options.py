"""PACS runs take the one :class:`InferenceOptions`: every option of ``infer`` works there, slicing
included, and a bad one is refused before any series is touched."""

from __future__ import annotations

import json

import pytest

from aaclip_med.cli import main
from aaclip_med.inference import InferenceOptions, SliceOptions
from aaclip_med.pacs import DicomWebServer, DimseNode, listen, run_pacs, series_key
from tests.pacs.conftest import TINY, upload, write_ct
from tests.pacs.orthanc import free_port


def test_slicing_options_reach_a_pacs_run(orthanc, client, pacs_env, tmp_path, capsys):
    ds = upload(client, write_ct(tmp_path / "src", seed=7, depth=5, study_uid="1.2.826.0.1.3680043.8.498.77"))
    out = tmp_path / "out"
    code = main(["pacs", "run", "--url", orthanc.dicomweb_url, "--study", ds.StudyInstanceUID, "--out", str(out),
                 "--slice-range", "1:3", "--min-foreground", "0", "--modality", "ct", *TINY])
    assert code == 0, capsys.readouterr()
    key = series_key(ds.SeriesInstanceUID)
    results = out / "results" / key
    run = json.loads((results / "run.json").read_text())
    assert run["slices"] == {"axis": "acquisition", "start": 1, "stop": 3, "min_foreground": 0.0,
                                         "skip_empty": False}
    assert run["dicom"] is True
    slices = json.loads((results / f"{key}_scores.json").read_text())["slices"]
    assert sorted(row["slice_index"] for row in slices) == [1, 2]  # only the slices asked for were predicted
    record = json.loads((out / "pacs_run.json").read_text())
    assert record["options"]["slices"]["start"] == 1 and record["options"]["modality"] == "ct"


def test_reference_memory_reaches_a_pacs_run_read_once(orthanc, client, pacs_env, tmp_path, capsys, caplog,
                                                       monkeypatch):
    """``pacs run --references``: every series is scored with the memory, which is read from its file
    once for the whole run (not once per series), and each series' run.json names the file."""
    import aaclip_med.memory as memory
    from aaclip_med.inference.run_info import sha256_file

    study = "1.2.826.0.1.3680043.8.498.78"
    keys = [series_key(upload(client, write_ct(tmp_path / f"src{seed}", seed=seed, depth=3, study_uid=study)).SeriesInstanceUID)
            for seed in (21, 22)]
    refs = tmp_path / "refs.safetensors"
    write_ct(tmp_path / "normals", seed=23, depth=4)
    assert main(["references", "build", str(tmp_path / "normals"), "--modality", "ct", "--out", str(refs), *TINY]) == 0
    loads = []
    real_load = memory.load_references
    monkeypatch.setattr(memory, "load_references", lambda path: loads.append(path) or real_load(path))
    out = tmp_path / "out"
    code = main(["pacs", "run", "--url", orthanc.dicomweb_url, "--study", study, "--out", str(out),
                 "--modality", "ct", "--references", str(refs), "--reference-weight", "1", *TINY])
    assert code == 0, capsys.readouterr()
    assert loads == [str(refs)]
    expected = {"sha256": sha256_file(refs), "weight": 1.0}
    for key in keys:
        run = json.loads((out / "results" / key / "run.json").read_text())
        assert run["references"] == expected and run["references_path"] == str(refs)
    options = json.loads((out / "pacs_run.json").read_text())["options"]
    assert options["references"] == expected and options["references_path"] == str(refs)
    raw = [r for r in caplog.records if "Parametric Maps hold raw map values" in r.getMessage()]
    assert len(raw) == 1  # decided once for the run, not warned per series


def test_bad_options_refused_before_any_series(tiny_model, tmp_path):
    """A threshold no map of the network reaches fails at start, once, with no request and no folder."""
    never = InferenceOptions(threshold=1e6, device="cpu")
    server = DicomWebServer(f"http://127.0.0.1:{free_port()}/dicom-web", retries=0, timeout=1)  # nobody listens
    with pytest.raises(ValueError, match="threshold 1e\\+06 is outside the range"):
        run_pacs(server, tiny_model, tmp_path / "run", studies=["1.2.3"], options=never)
    with pytest.raises(ValueError, match="threshold 1e\\+06 is outside the range"):
        listen(tiny_model, tmp_path / "listen", ae_title="AACLIP", port=free_port(),
               forward=DimseNode("127.0.0.1", free_port(), "PACS"), options=never)
    assert not (tmp_path / "run").exists() and not (tmp_path / "listen").exists()
    with pytest.raises(ValueError, match="precision"):
        InferenceOptions(precision="fp8")
    with pytest.raises(ValueError, match="slice range"):
        InferenceOptions(slices=SliceOptions(start=4, stop=2))


def test_bad_cli_options_refused_before_the_model(tmp_path, capsys):
    common = ["pacs", "run", "--url", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3", "--out", str(tmp_path / "o")]
    for bad, message in ((["--slice-range", "5:2"], "--slice-range: expected START:STOP with 0 <= START < STOP"),
                         (["--precision", "fp8"], "--precision: invalid choice: 'fp8'"),
                         (["--threshold", "nan"], "--threshold: must be a finite number")):
        with pytest.raises(SystemExit) as info:
            main([*common, *bad, *TINY])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert main([*common, "--batch-size", "0", *TINY]) == 1
    assert "need batch_size >= 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_deploy_app_refuses_bad_options_at_start(tmp_path, monkeypatch, capsys):
    """The MONAI Deploy app's command line: the same options, refused in one line before any series.

    The SDK is replaced by empty stand-ins: the refusals happen before the app touches it.
    """
    import importlib
    import sys
    import types

    core = types.ModuleType("monai.deploy.core")
    core.Application = core.Operator = core.OperatorSpec = object
    monkeypatch.setitem(sys.modules, "monai.deploy", types.ModuleType("monai.deploy"))
    monkeypatch.setitem(sys.modules, "monai.deploy.core", core)
    monkeypatch.delitem(sys.modules, "aaclip_med.pacs.deploy_app", raising=False)
    deploy_app = importlib.import_module("aaclip_med.pacs.deploy_app")
    monkeypatch.delitem(sys.modules, "aaclip_med.pacs.deploy_app")  # the next import gets the real SDK again
    (tmp_path / "in").mkdir()
    common = ["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), *TINY]
    assert deploy_app.main([*common, "--threshold", "1e6"]) == 1
    [error] = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]  # one line, no traceback
    assert error.startswith("aaclip_med.pacs.deploy_app: error: threshold 1e+06 is outside the range raw maps")
    with pytest.raises(SystemExit) as info:
        deploy_app.main([*common, "--min-foreground", "2"])
    assert info.value.code == 2 and "--min-foreground: must be a fraction in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
