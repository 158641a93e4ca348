"""``aaclip-med train`` on a manifest of PNG files: the real data hook, k-shot, resume by re-running."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from aaclip_med.cli import main
from aaclip_med.training import load_train_state


def _write_dataset(root, count: int = 4) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for index in range(count):
        image = (rng.random((40, 40, 3)) * 120).astype(np.uint8)
        mask = np.zeros((40, 40), np.uint8)
        if index % 2:
            mask[10:20, 12:24] = 255
            image[mask > 0] = 250
        Image.fromarray(image).save(root / f"img{index}.png")
        record = {"image_path": f"img{index}.png", "label": float(index % 2), "class_name": "widget", "mask_path": ""}
        if index % 2:
            Image.fromarray(mask).save(root / f"mask{index}.png")
            record["mask_path"] = f"mask{index}.png"
        lines.append(json.dumps(record))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")


def test_train_command_writes_documented_outputs_and_resumes(tmp_path):
    _write_dataset(tmp_path)
    out = tmp_path / "out"
    argv = ["train", "--manifest", str(tmp_path / "train.jsonl"), "--dataset-root", str(tmp_path),
            "--out", str(out), "--backbone", "aaclip-tiny", "--backbone-weights", "random", "--shot", "2",
            "--descriptions", '{"widget": "plastic widget"}', "--epochs-stage1", "1", "--epochs-stage2", "1",
            "--batch-size-stage1", "2", "--batch-size-stage2", "1", "--lr-stage1", "1e-3", "--lr-stage2", "1e-3",
            "--val-manifest", str(tmp_path / "train.jsonl"), "--no-progress", "--no-tensorboard", "--save-every", "1"]
    assert main([*argv, "--stop-after", "1"]) == 0
    assert load_train_state(out / "train_state.pt")["stage"] == 2  # stage 1 (1 step) done, stage 2 stopped at 1
    assert not (out / "adapters.safetensors").exists()
    assert main(argv) == 0
    for name in ("adapters.safetensors", "adapters.json", "train_config.json", "log.jsonl",
                 "stage1/last.safetensors", "stage1/best.safetensors", "stage2/last.safetensors"):
        assert (out / name).is_file(), name
    assert json.loads((out / "adapters.json").read_text())["config"]["descriptions"] == {"widget": "plastic widget"}
    assert load_train_state(out / "train_state.pt")["completed"] is True


def test_unknown_class_without_description_is_a_clear_error(tmp_path, capsys):
    _write_dataset(tmp_path, count=2)
    text = (tmp_path / "train.jsonl").read_text().replace("widget", "gizmo-42")
    (tmp_path / "train.jsonl").write_text(text)
    code = main(["train", "--manifest", str(tmp_path / "train.jsonl"), "--dataset-root", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--backbone", "aaclip-tiny", "--backbone-weights", "random"])
    assert code == 1
    assert "gizmo-42" in capsys.readouterr().err


def _normal_only_dataset(root) -> None:
    _write_dataset(root, count=4)
    lines = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    normal = [dict(r, label=0.0, mask_path="") for r in lines]
    (root / "normal.jsonl").write_text("\n".join(json.dumps(r) for r in normal) + "\n")


def test_normal_only_manifest_and_stage2_without_stage1_are_refused_before_building(tmp_path, capsys):
    _normal_only_dataset(tmp_path)
    tiny = ["--backbone", "aaclip-tiny", "--backbone-weights", "random", "--descriptions", '{"widget": "plastic widget"}']
    code = main(["train", "--manifest", str(tmp_path / "normal.jsonl"), "--dataset-root", str(tmp_path),
                 "--out", str(tmp_path / "a"), *tiny])
    assert code == 1 and "none has an anomaly mask" in capsys.readouterr().err
    code = main(["train", "--manifest", str(tmp_path / "train.jsonl"), "--dataset-root", str(tmp_path),
                 "--out", str(tmp_path / "b"), "--stage", "2", *tiny])
    err = capsys.readouterr().err
    assert code == 1 and "Stage 2 alone needs trained Stage-1 text adapters" in err and "--weights" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_every_option_has_help_and_the_renamed_ones_are_gone():
    import argparse

    from aaclip_med.commands import train

    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_arguments(parser)
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert [a.dest for a in options if not a.help] == []
    flags = {flag for a in options for flag in a.option_strings}
    assert {"--precision", "--disentangle-weight", "--force"} <= flags
    assert not {"--amp", "--gamma", "--no-resume"} & flags
    text = " ".join(parser.format_help().split())
    assert "weight of the Stage-1 disentangle loss (the paper's gamma) (default: 0.1)" in text
    assert "(default: auto)" in text and "{auto,fp32,bf16,fp16}" in text


def test_bad_case_window_is_refused_before_the_network_is_built(tmp_path, capsys):
    _write_dataset(tmp_path, count=2)
    code = main(["train", "--manifest", str(tmp_path / "train.jsonl"), "--dataset-root", str(tmp_path),
                 "--out", str(tmp_path / "out"), "--backbone", "aaclip-tiny", "--backbone-weights", "random",
                 "--case-window", "0"])
    assert code == 1
    assert "case_window must be >= 1 case, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
