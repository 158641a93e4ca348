"""``aaclip-med references build`` and ``infer --references`` through the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aaclip_med.adaptation import load_references
from aaclip_med.cli import main
from tests._synthetic import write_dicom_series, write_nifti

TINY = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--device", "cpu", "--no-progress"]


def _tissue(shape, seed):
    return (40 + np.random.default_rng(seed).normal(0, 15, shape)).astype(np.int16)


def _pngs(folder, count=3):
    folder.mkdir(parents=True)
    for n in range(count):
        noise = np.random.default_rng(n).normal(120, 10, (48, 48)).clip(0, 255).astype(np.uint8)
        Image.fromarray(noise).save(folder / f"normal{n}.png")
    return folder


def _build(tmp_path, *inputs, extra=()):
    out = tmp_path / "refs.safetensors"
    code = main(["references", "build", *map(str, inputs), "--out", str(out), *TINY, *extra])
    return code, out


@pytest.mark.parametrize("kind", ["dicom", "nifti", "png"])
def test_build_from_each_kind_of_source(tmp_path, capsys, kind):
    if kind == "dicom":
        write_dicom_series(tmp_path / "series", _tissue((4, 32, 32), 0))
        source, modality, slices = tmp_path / "series", "ct", 4
    elif kind == "nifti":
        volume = np.zeros((32, 32, 5), np.float32)
        volume[:, :, 1:4] = 100 + np.random.default_rng(1).normal(0, 10, (32, 32, 3))  # slices 0 and 4: background only
        source, modality, slices = write_nifti(tmp_path / "normal.nii.gz", volume), "mri", 3
    else:
        source, modality, slices = _pngs(tmp_path / "pngs"), "photo", 3
    code, out = _build(tmp_path, source, extra=["--modality", modality, "--class-name", "brain"])
    assert code == 0
    text = capsys.readouterr().out
    patches = 8 * 8 * slices  # the tiny network's 8 x 8 patch grid
    assert f"brain: kept {patches} of {patches} patches per level from {slices} slice(s)" in text
    memory = load_references(out).classes["brain"]
    assert memory.slices == slices and memory.modality == modality and len(memory.levels) == 4


def test_infer_with_references_and_a_calibration_fitted_on_combined_scores(tmp_path, capsys):
    refs = _pngs(tmp_path / "refs", 4)
    assert _build(tmp_path, refs, extra=["--modality", "photo"])[0] == 0
    test = tmp_path / "test.png"
    image = np.random.default_rng(9).normal(120, 10, (48, 48)).clip(0, 255).astype(np.uint8)
    image[16:32, 16:32] = 255
    Image.fromarray(image).save(test)
    common = [str(test), "--modality", "photo", *TINY]
    with_refs = ["--references", str(tmp_path / "refs.safetensors"), "--reference-weight", "1.0"]
    assert main(["infer", *common, "--out", str(tmp_path / "a"), *with_refs, "--calibrate-normals", str(refs)]) == 0
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["references"]["weight"] == 1.0 and len(record["references"]["sha256"]) == 64
    calibration = json.loads((tmp_path / "a" / "calibration.json").read_text())
    assert calibration["model"]["references"] == record["references"]
    # the calibration was fitted on combined scores: applying it without the memory is refused
    capsys.readouterr()
    code = main(["infer", *common, "--out", str(tmp_path / "b"), "--calibration", str(tmp_path / "a" / "calibration.json")])
    assert code == 1
    assert "references: calibration {" in capsys.readouterr().err


def test_a_memory_of_another_image_size_is_refused_naming_it(tmp_path, capsys):
    assert _build(tmp_path, _pngs(tmp_path / "refs"), extra=["--modality", "photo"])[0] == 0
    capsys.readouterr()
    code = main(["infer", str(tmp_path / "refs" / "normal0.png"), "--out", str(tmp_path / "o"), "--modality", "photo",
                 "--references", str(tmp_path / "refs.safetensors"), "--image-size", "224", *TINY])
    assert code == 1
    assert "image_size: references 112, this run 224" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_reference_sets_get_one_line_errors(tmp_path, capsys):
    empty = np.zeros((16, 16, 3), np.float32)
    write_nifti(tmp_path / "air.nii.gz", empty - 1000)
    assert _build(tmp_path, tmp_path / "air.nii.gz", extra=["--modality", "ct"])[0] == 1
    assert "--min-foreground 0.05: no reference slice has that much foreground" in capsys.readouterr().err
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"image_path": "a.png", "label": 0, "class_name": "x"}\n'
                        '{"image_path": "b.png", "label": 1, "class_name": "x", "mask_path": "b_mask.png"}\n')
    code = main(["references", "build", "--manifest", str(manifest), "--out", str(tmp_path / "r.safetensors"), *TINY])
    assert code == 1 and "anomalous record(s) (label 1) among the references" in capsys.readouterr().err
    assert main(["references", "build", str(tmp_path), "--out", str(tmp_path / "refs.json"), *TINY]) == 1
    assert "the memory is a .safetensors file" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["infer", "x.png", "--out", "o"], ["pacs", "run", "--url", "http://pacs", "--out", "o"],
                                     ["pacs", "listen", "--ae-title", "AI", "--port", "11112", "--forward", "h:1:P",
                                      "--out", "o"]])
def test_every_inference_command_takes_the_memory(tmp_path, command):
    from aaclip_med.arguments import inference_options_from_args
    from aaclip_med.cli import _command_parser

    refs = tmp_path / "refs.safetensors"
    refs.write_bytes(b"")
    args = _command_parser(command[0]).parse_args([*command[1:], "--references", str(refs), "--reference-weight", "1"])
    options = inference_options_from_args(args)
    assert options.references == str(refs) and options.reference_weight == 1.0
    args.references = str(tmp_path / "missing.safetensors")
    with pytest.raises(FileNotFoundError, match="--references .*missing.safetensors: no such file"):
        inference_options_from_args(args)


def test_help_and_path_errors_answer_without_torch(tmp_path):
    from tests.commands.test_infer import _light

    code, out, err = _light("references", "build", "--help")
    assert code == 0 and "--max-mb MB" in out and err.strip().endswith("NO-TORCH")
    code, _, err = _light("references", "build", tmp_path / "missing", "--out", tmp_path / "r.safetensors")
    assert code == 1 and "missing: no such file or folder" in err and "NO-TORCH" in err


def test_build_from_a_manifest_keeps_one_memory_per_class(tmp_path, capsys):
    _pngs(tmp_path / "a", 2)
    _pngs(tmp_path / "b", 3)
    lines = [{"image_path": f"{folder}/normal{n}.png", "label": 0, "class_name": folder}
             for folder, count in (("a", 2), ("b", 3)) for n in range(count)]
    manifest = tmp_path / "normals.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code = main(["references", "build", "--manifest", str(manifest), "--out", str(tmp_path / "r.safetensors"),
                 "--modality", "photo", "--descriptions", '{"a": "brick", "b": "grass"}', *TINY])
    assert code == 0
    bank = load_references(tmp_path / "r.safetensors")
    assert {name: (m.description, m.slices) for name, m in bank.classes.items()} == {"a": ("brick", 2), "b": ("grass", 3)}
