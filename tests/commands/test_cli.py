"""The dispatcher and the thin commands the lead owns (prepare, evaluate)."""

import json

import numpy as np
import pytest
from PIL import Image

from aaclip_med.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


def _png(path, value=128, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)


def test_prepare_writes_mvtec_manifest_and_k_shot(tmp_path, capsys):
    root = tmp_path / "mvtec"
    for i in range(3):
        _png(root / "bottle" / "test" / "good" / f"{i:03d}.png")
        _png(root / "bottle" / "test" / "broken" / f"{i:03d}.png")
        _png(root / "bottle" / "ground_truth" / "broken" / f"{i:03d}_mask.png", 255)
    out = tmp_path / "out" / "test.jsonl"
    assert main(["prepare", "mvtec", str(root), "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6 and {r["class_name"] for r in lines} == {"bottle"}
    assert sum(r["label"] for r in lines) == 3
    anomalous = [r for r in lines if r["label"] == 1.0]
    assert all(r["mask_path"].startswith("bottle/ground_truth/broken/") for r in anomalous)
    assert "wrote 6 records of 1 classes" in capsys.readouterr().out

    shot = tmp_path / "out" / "2shot.jsonl"
    assert main(["prepare", "mvtec", str(root), "--out", str(shot), "--shot", "2"]) == 0
    picked = [json.loads(line) for line in shot.read_text().splitlines()]
    assert sorted(r["label"] for r in picked) == [0.0, 1.0]


def test_prepare_unknown_layout_is_a_clear_error(tmp_path, capsys):
    assert main(["prepare", "imagenet", str(tmp_path), "--out", str(tmp_path / "m.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset layout 'imagenet'" in err and "mvtec" in err
    assert not (tmp_path / "m.jsonl").exists()


def test_evaluate_missing_predictions_names_the_folder(tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"image_path": "a.png", "label": 0.0, "class_name": "x", "mask_path": ""}) + "\n")
    code = main(["evaluate", "--manifest", str(manifest), "--dataset-root", str(tmp_path),
                 "--predictions", str(tmp_path / "nope"), "--out", str(tmp_path / "rep")])
    assert code == 1
    assert "nope" in capsys.readouterr().err


def test_unknown_option_exits_with_usage():
    with pytest.raises(SystemExit) as info:
        main(["prepare", "--no-such-flag"])
    assert info.value.code == 2


def test_import_weights_converts_public_checkpoints(tmp_path, capsys):
    import torch

    from aaclip_med.keys import Domain
    from aaclip_med.model import load_adapters
    from tests.model.test_checkpoint import _perturbed_model, _write_public_format

    source = _perturbed_model(seed=5)
    _write_public_format(source, tmp_path)
    out = tmp_path / "converted" / "adapters.safetensors"
    code = main(["import-weights", "--text-adapter", str(tmp_path / "text_adapter.pth"),
                 "--image-adapter", str(tmp_path / "image_adapter.pth"), "--out", str(out),
                 "--backbone", "aaclip-tiny"])
    assert code == 0 and out.is_file() and "use it with --weights" in capsys.readouterr().out
    converted = load_adapters(out, pretrained="random").eval()
    assert converted.checkpoint_extra["imported_from"][0].endswith("text_adapter.pth")
    images = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        expected = source.predict(images, source.compute_text_anchors("plate"), Domain.INDUSTRIAL)
        got = converted.predict(images, converted.compute_text_anchors("plate"), Domain.INDUSTRIAL)
    torch.testing.assert_close(got.anomaly_map, expected.anomaly_map, rtol=0, atol=0)


_NO_TORCH = """
import sys
from aaclip_med.cli import COMMANDS, main

calls = [[name, "--help"] for name in COMMANDS] + [["pacs", "run", "--help"], ["pacs", "listen", "--help"],
         ["infer", "x.png", "--out", "o", "--slice-range", "9:4"], ["pacs", "run", "--url", "http://h/dicom-web",
         "--study", "1.2", "--out", "o", "--precision", "fp8"]]
codes = []
for argv in calls:
    try:
        codes.append(main(argv))
    except SystemExit as exit_:
        codes.append(exit_.code)
# the light modules of heavy packages: the CLI reads them to check its arguments
import aaclip_med.inference.options, aaclip_med.model.adapter_file, aaclip_med.model.config, aaclip_med.training.config
print(codes, sorted(m for m in ("torch", "monai", "open_clip", "numpy") if m in sys.modules), file=sys.stderr)
"""


def test_help_and_argument_errors_import_no_torch():
    """Every command's --help and an argument error of infer and pacs answer without torch, MONAI or open_clip."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"{[0] * (len(COMMANDS) + 2) + [2, 2]} []", proc.stderr
    assert "--slice-range: expected START:STOP" in proc.stderr and "--precision: invalid choice: 'fp8'" in proc.stderr


def test_lazy_packages_still_export_their_names():
    import aaclip_med.inference as inference
    import aaclip_med.model as model
    import aaclip_med.training as training
    from aaclip_med.inference.predictor import Predictor

    assert inference.Predictor is Predictor and model.check_image_size.__module__ == "aaclip_med.model.config"
    for package in (inference, model, training):
        for name in package.__all__:  # each name's module really defines it
            getattr(package, name)
    with pytest.raises(AttributeError, match="module 'aaclip_med.model' has no attribute 'nope'"):
        model.nope  # noqa: B018
