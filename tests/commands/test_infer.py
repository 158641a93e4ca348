"""``aaclip-med infer`` (and its sibling commands) as a new user meets them: fast answers, checks
before anything is built or written, one vocabulary, messages that name the problem and the way out."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from aaclip_med.cli import main

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--no-progress"]

_LIGHT = """
import sys
from aaclip_med.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit_:
    code = exit_.code
print("TORCH-IMPORTED" if "torch" in sys.modules else "NO-TORCH", file=sys.stderr)
sys.exit(code)
"""


def _light(*args) -> tuple[int, str, str]:
    """Run ``aaclip-med ARGS`` in a fresh interpreter; stderr ends with whether torch was imported."""
    proc = subprocess.run([sys.executable, "-c", _LIGHT, *map(str, args)], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def _png(path, value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path)
    return path


# --- answers before torch is imported ---------------------------------------------------------------


def test_help_version_and_option_errors_import_no_torch(tmp_path):
    code, out, err = _light("infer", "--help")
    assert code == 0 and "--modality PRESET" in out and err.strip().endswith("NO-TORCH")
    code, out, err = _light("--version")
    assert code == 0 and out.startswith("aaclip-med ") and "NO-TORCH" in err
    code, _, err = _light("infer", "x.png", "--out", tmp_path / "o", "--threshold", "nan")
    assert code == 2 and "--threshold: must be a finite number, got 'nan'" in err and "NO-TORCH" in err


def test_missing_or_wrong_weights_reported_before_torch(tmp_path):
    image = _png(tmp_path / "in.png")
    code, _, err = _light("infer", image, "--out", tmp_path / "o", "--weights", tmp_path / "adapters.safetensors")
    assert code == 1 and "adapters.safetensors: no such file" in err and "NO-TORCH" in err
    pth = tmp_path / "image_adapter.pth"
    with zipfile.ZipFile(pth, "w") as archive:  # what torch.save writes
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    code, _, err = _light("infer", image, "--out", tmp_path / "o", "--weights", pth)
    assert code == 1 and "is not a readable safetensors file (it looks like a PyTorch zip checkpoint)" in err
    assert "aaclip-med import-weights" in err and "NO-TORCH" in err and not (tmp_path / "o").exists()


def test_image_size_must_be_a_multiple_of_the_patch_size(tmp_path):
    image = _png(tmp_path / "in.png")
    code, _, err = _light("infer", image, "--out", tmp_path / "o", "--backbone", "ViT-B-16", "--image-size", "230")
    assert code == 1 and "image size 230 is not a multiple of the patch size 16 of ViT-B-16; use 224 or 240" in err
    assert "NO-TORCH" in err
    code, _, err = _light("infer", image, "--out", tmp_path / "o", *TINY, "--image-size", "100")
    assert code == 1 and "patch size 14 of aaclip-tiny; use 98 or 112" in err


def test_image_size_must_match_the_adapters(tmp_path, capsys):
    from aaclip_med.model import save_adapters
    from tests.conftest import make_tiny_model

    weights = save_adapters(make_tiny_model(image_size=28), tmp_path / "adapters")
    image = _png(tmp_path / "in.png")
    code, _, err = _light("infer", image, "--out", tmp_path / "o", "--weights", weights, "--image-size", "56",
                          "--device", "cpu")
    assert code == 1 and "--image-size 56: conflicts with" in err and "trained at 28 px" in err
    assert "NO-TORCH" in err  # the adapter file's metadata is read without torch
    assert not (tmp_path / "o").exists()


def test_evaluate_on_a_folder_that_is_not_predictions(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image_path": "a.png", "label": 0.0, "class_name": "x"}) + "\n")
    (tmp_path / "notpred").mkdir()
    code, _, err = _light("evaluate", "--manifest", manifest, "--predictions", tmp_path / "notpred", "--out", tmp_path / "r")
    assert code == 1 and "is not a predictions folder (no predictions.jsonl)" in err and "aaclip-med infer --manifest" in err
    assert "Errno" not in err and "NO-TORCH" in err  # --dataset-root is optional, as for infer


def test_demo_checks_weights_before_writing_the_sample(tmp_path):
    code, _, err = _light("demo", "--out", tmp_path / "demo", "--weights", tmp_path / "missing.safetensors")
    assert code == 1 and "missing.safetensors: no such file" in err
    assert not (tmp_path / "demo").exists()


# --- messages of a run ------------------------------------------------------------------------------


def test_not_an_image_input_is_named(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("patient notes")
    code = main(["infer", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err
    assert code == 1 and "notes.txt: is not an image input; inputs are DICOM files" in err
    assert "force=True" not in err and not (tmp_path / "o").exists()


def test_empty_dcm_in_a_folder_is_reported_as_failed(tmp_path, capsys):
    from tests.hardening._files import write_series

    write_series(tmp_path / "in" / "study", depth=3)
    (tmp_path / "in" / "study" / "broken.dcm").write_bytes(b"")
    code = main(["infer", str(tmp_path / "in"), "--out", str(tmp_path / "o"), *TINY])
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert code == 1 and summary["done"] == 1
    [failed] = summary["failed"]
    assert failed["path"].endswith("broken.dcm") and "empty (0 bytes)" in failed["error"]
    assert "broken.dcm" in printed


def test_all_failed_run_says_so_and_leaves_nothing(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / "in").mkdir(exist_ok=True)
        (tmp_path / "in" / f"{name}.nii.gz").write_bytes(b"garbage")
    code = main(["infer", str(tmp_path / "in"), "--out", str(tmp_path / "o"), *TINY])
    out = capsys.readouterr().out
    assert code == 1 and "all 2 cases failed; nothing was written" in out
    assert not (tmp_path / "o").exists()


def test_description_is_recorded_as_given(tmp_path):
    assert main(["infer", str(_png(tmp_path / "in.png")), "--out", str(tmp_path / "o"), "--description", "object",
                 *TINY]) == 0
    run = json.loads((tmp_path / "o" / "run.json").read_text())
    assert (run["class_name"], run["description"]) == ("object", "object")
    case = json.loads((tmp_path / "o" / "scores.json").read_text())["cases"][0]
    assert case["class_name"] == "object" and case["modality"] == "photo"  # an 8-bit image: photo by default


def test_resume_with_other_settings_is_refused_by_the_cli(tmp_path, capsys):
    image = _png(tmp_path / "in.png")
    assert main(["infer", str(image), "--out", str(tmp_path / "o"), *TINY]) == 0
    record = (tmp_path / "o" / "run.json").read_text()
    code = main(["infer", str(image), "--out", str(tmp_path / "o"), "--modality", "mri", *TINY])
    err = capsys.readouterr().err
    assert code == 1 and "modality: finished work 'auto', this run 'mri'" in err and "--force" in err
    assert (tmp_path / "o" / "run.json").read_text() == record
    assert main(["infer", str(image), "--out", str(tmp_path / "o"), "--modality", "mri", "--force", *TINY]) == 0
    assert json.loads((tmp_path / "o" / "run.json").read_text())["modality"] == "mri"


def test_random_weights_are_announced_once(tmp_path):
    image = _png(tmp_path / "in.png")
    proc = subprocess.run([sys.executable, "-m", "aaclip_med.cli", "infer", str(image), "--out", str(tmp_path / "o"),
                           *TINY], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("RANDOM weights") == 1
    assert "initialized randomly" not in proc.stderr and "UserWarning" not in proc.stderr


def test_ctrl_c_prints_one_line(monkeypatch, tmp_path, capsys):
    from aaclip_med.commands import infer

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(infer, "run", interrupted)
    assert main(["infer", "x.png", "--out", str(tmp_path / "o")]) == 130
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == ["aaclip-med: interrupted; finished outputs are kept, re-run the same command to resume"]


def test_noise_filter_drops_ignites_empty_interrupt_line_only():
    import logging

    from aaclip_med.cli import _DropNoise

    def record(message):
        return logging.LogRecord("ignite.engine.engine.Engine", logging.ERROR, __file__, 1, message, None, None)

    keep = _DropNoise()
    assert not keep.filter(record("Engine run is terminating due to exception: "))
    assert keep.filter(record("Engine run is terminating due to exception: disk full"))
    assert not keep.filter(record("No pretrained weights loaded for model 'x'. Model initialized randomly."))


def test_slicing_flags_reach_the_options(tmp_path):
    import argparse

    from aaclip_med.arguments import inference_options_from_args
    from aaclip_med.commands import infer

    parser = argparse.ArgumentParser()
    infer.add_arguments(parser)
    args = parser.parse_args(["x", "--out", "o", "--slice-axis", "1", "--slice-range", "4:9", "--skip-empty",
                              "--min-foreground", "0.2", "--no-progress", "--force"])
    options = inference_options_from_args(args)
    assert (options.slices.axis, options.slices.start, options.slices.stop) == (1, 4, 9)
    assert options.slices.skip_empty and options.slices.min_foreground == 0.2
    assert not options.progress and options.force and options.modality == "auto" and options.precision == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["x", "--out", "o", "--slice-range", "9:4"])


# --- one vocabulary, every default shown -----------------------------------------------------------


def _help(*command) -> str:
    code, out, _ = _light(*command, "--help")
    assert code == 0
    return " ".join(out.split())


def test_help_states_defaults_and_is_true_per_command():
    infer = _help("infer")
    for text in ("(default: auto)", "--precision {auto,fp32,bf16,fp16,int8}", "(default: 8)", "--seed SEED seed of",
                 "--no-progress no progress bars", "ViT-B-16 512, ViT-L-14-336 518", "else ViT-L-14-336",
                 "aaclip-med import-weights", "(default: acquisition)", "(default: 0.05)"):
        assert text in infer, text
    demo = _help("demo")
    assert "else ViT-B-16;" in demo and "else 224 for ViT-B-16" in demo and "AACLIP_MED_CLIP_WEIGHTS" in demo
    assert "(default: auto)" in demo
    evaluate = _help("evaluate")
    assert "(default: the manifest's folder)" in evaluate and "(default: deployment)" in evaluate


def test_inputs_and_a_manifest_together_are_refused(tmp_path, capsys):
    """INPUT would be silently ignored in favour of the manifest."""
    image = _png(tmp_path / "in.png")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image_path": "in.png", "label": 0, "class_name": "scan"}) + "\n")
    code = main(["infer", str(image), "--manifest", str(manifest), "--out", str(tmp_path / "o"), *TINY])
    assert code == 1
    assert "give INPUT files/folders or --manifest FILE, not both" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
