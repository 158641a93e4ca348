"""A damaged or mismatched reference memory never gives a quiet answer (through the command line).

Each case is what a user did and got exit 0 for: resuming into a folder made with another memory or
weight, a memory of other adapters or another description, a weight without a memory, a byte-edited
file, a uselessly small memory, a manifest whose descriptions sit beside it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aaclip_med.cli import main
from tests.commands.test_references import TINY, _pngs


@pytest.fixture(scope="module")
def memories(tmp_path_factory):
    """Two memories of the same network (seed 0) from other normals, one of seed 7, and a test image."""
    root = tmp_path_factory.mktemp("memories")
    _pngs(root / "normals1", 3)
    (root / "normals2").mkdir()
    for n in range(3):
        noise = np.random.default_rng(50 + n).normal(90, 20, (48, 48)).clip(0, 255).astype(np.uint8)
        Image.fromarray(noise).save(root / "normals2" / f"normal{n}.png")
    for name, folder, seed in (("r1", "normals1", "0"), ("r2", "normals2", "0"), ("seed7", "normals1", "7")):
        code = main(["references", "build", str(root / folder), "--out", str(root / f"{name}.safetensors"),
                     "--modality", "photo", "--seed", seed, *TINY])
        assert code == 0
    image = np.random.default_rng(9).normal(120, 10, (48, 48)).clip(0, 255).astype(np.uint8)
    image[16:32, 16:32] = 255
    Image.fromarray(image).save(root / "test.png")
    return root


def _infer(memories, out, *extra):
    return main(["infer", str(memories / "test.png"), "--out", str(out), "--modality", "photo", *TINY, *extra])


def test_resume_with_another_memory_or_weight_is_refused_naming_it(memories, tmp_path, capsys):
    out = tmp_path / "o"
    r1, r2 = str(memories / "r1.safetensors"), str(memories / "r2.safetensors")
    assert _infer(memories, out, "--references", r1, "--reference-weight", "1.0") == 0
    record = (out / "run.json").read_bytes()
    capsys.readouterr()
    assert _infer(memories, out, "--references", r2, "--reference-weight", "0.5") == 1
    err = capsys.readouterr().err
    assert "references.sha256: finished work" in err and "references.weight: finished work 1.0, this run 0.5" in err
    assert _infer(memories, out, "--references", r1, "--reference-weight", "0.5") == 1
    err = capsys.readouterr().err
    assert "references.weight: finished work 1.0, this run 0.5" in err and "references.sha256" not in err
    assert _infer(memories, out) == 1
    assert "references: finished work {" in capsys.readouterr().err
    assert (out / "run.json").read_bytes() == record  # the finished work's record is kept
    assert _infer(memories, out, "--references", r1, "--reference-weight", "1.0") == 0  # the same: resumes
    assert json.loads((out / "summary.json").read_text())["skipped"] == 1


def test_a_memory_of_other_adapters_or_another_description_is_refused(memories, tmp_path, capsys):
    seed7 = str(memories / "seed7.safetensors")
    assert _infer(memories, tmp_path / "a", "--references", seed7) == 1  # untrained adapters of seed 0 here
    err = capsys.readouterr().err
    assert "adapter_tensors_sha256: references" in err and not (tmp_path / "a").exists()
    assert _infer(memories, tmp_path / "b", "--references", seed7, "--seed", "7") == 0
    capsys.readouterr()
    code = _infer(memories, tmp_path / "c", "--references", str(memories / "r1.safetensors"),
                  "--class-name", "scan", "--description", "a brick wall")
    assert code == 1
    assert "description: references 'scan', this run 'a brick wall'" in capsys.readouterr().err


def test_a_weight_without_a_memory_is_refused(memories, tmp_path, capsys):
    assert _infer(memories, tmp_path / "o", "--reference-weight", "0.7") == 1
    assert "--reference-weight 0.7 needs --references FILE" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_byte_edited_memory_is_refused_naming_the_file(memories, tmp_path, capsys):
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray((memories / "r1.safetensors").read_bytes())
    header = int.from_bytes(data[:8], "little") + 8  # safetensors: u64 header length, header, then the tensors
    rng = np.random.default_rng(0)
    for offset in rng.choice(np.arange(header, len(data)), 1000, replace=False):
        data[offset] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert _infer(memories, tmp_path / "o", "--references", str(damaged)) == 1
    err = capsys.readouterr().err
    assert f"{damaged}: tensor scan/level" in err and "does not match its checksum" in err
    assert not (tmp_path / "o").exists()


def test_a_memory_too_small_to_be_useful_is_warned(memories, tmp_path, caplog):
    code = main(["references", "build", str(memories / "normals1"), "--out", str(tmp_path / "tiny.safetensors"),
                 "--modality", "photo", "--max-mb", "0.001", *TINY])
    assert code == 0
    assert "fewer than the 64 patches of one slice" in caplog.text


def test_build_from_a_manifest_reads_the_descriptions_beside_it(tmp_path, capsys):
    _pngs(tmp_path / "brick", 3)
    manifest = tmp_path / "normals.jsonl"
    manifest.write_text("".join(json.dumps({"image_path": f"brick/normal{n}.png", "label": 0, "class_name": "brick"})
                                + "\n" for n in range(3)))
    (tmp_path / "descriptions.json").write_text(json.dumps({"brick": "a red brick wall"}))
    code = main(["references", "build", "--manifest", str(manifest), "--out", str(tmp_path / "r.safetensors"),
                 "--modality", "photo", *TINY])
    assert code == 0, capsys.readouterr().err
    from aaclip_med.adaptation import load_references

    assert load_references(tmp_path / "r.safetensors").classes["brick"].description == "a red brick wall"
