"""A weight file that would run code when unpickled is refused, with an error naming the file,
through every loader entry point; the planted payload never runs."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
import torch

from aaclip_med.model import CheckpointError, load_adapters, load_public_checkpoints
from aaclip_med.model.backbone import BackboneWeightsError, load_backbone_weights
from aaclip_med.training import load_train_state

TINY = ["--backbone", "aaclip-tiny", "--device", "cpu"]


class _Payload:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture
def evil(tmp_path):
    """(make(name, wrap) -> path of a malicious torch pickle, marker path that must never appear)."""
    marker = tmp_path / "PAYLOAD_RAN"

    def make(name: str, key: str | None = None):
        obj = {"weight": torch.zeros(2), "payload": _Payload(marker)}
        path = tmp_path / name
        torch.save({key: obj} if key else obj, path)
        return path

    yield make, marker
    assert not marker.exists(), "unpickling ran the payload"


def test_adapters_file_that_is_a_pickle(evil):
    make, _ = evil
    for name in ("adapters.safetensors", "adapters.pt"):
        with pytest.raises(CheckpointError, match=f"{name}.*not a readable safetensors file"):
            load_adapters(make(name))


def test_public_checkpoints_refused(evil, tmp_path):
    make, _ = evil
    text, image = make("text_adapter.pth", "text_adapter"), make("image_adapter.pth", "image_adapter")
    with pytest.raises(CheckpointError, match="Refusing to load .*text_adapter.pth"):
        load_public_checkpoints(text, image)


def test_backbone_weights_refused(evil):
    make, _ = evil
    with pytest.raises(BackboneWeightsError, match="Could not read backbone weights .*clip.bin"):
        load_backbone_weights(torch.nn.Linear(2, 2), make("clip.bin"))


def test_fake_torchscript_archive_runs_no_python(evil, tmp_path):
    """A zip that looks like OpenAI's TorchScript .pt goes to torch.jit.load, whose C++ unpickler
    cannot call Python functions: it must fail without running the payload."""
    make, _ = evil
    pickled = make("inner.pt")
    with zipfile.ZipFile(pickled) as archive:
        data = {n.split("/", 1)[1]: archive.read(n) for n in archive.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, blob in data.items():
            archive.writestr(f"model/{name}", blob)
        archive.writestr("model/constants.pkl", data["data.pkl"])
    path = tmp_path / "ViT-fake.pt"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(BackboneWeightsError, match="ViT-fake.pt"):
        load_backbone_weights(torch.nn.Linear(2, 2), path)


def test_train_state_refused(evil):
    make, _ = evil
    with pytest.raises(CheckpointError, match="Refusing to load .*train_state.pt"):
        load_train_state(make("train_state.pt"))


# --- through the CLI ---------------------------------------------------------------------------


def test_cli_infer_weights_and_backbone_weights(evil, cli, tmp_path):
    make, _ = evil
    image = tmp_path / "in.png"
    import numpy as np

    from ._files import write_png

    write_png(image, np.zeros((8, 8), np.uint8))
    code, _, err = cli("infer", image, "--out", tmp_path / "out1", "--weights", make("adapters.safetensors"), *TINY)
    assert code == 1 and "adapters.safetensors" in err and "is not a readable safetensors file" in err
    assert "aaclip-med import-weights" in err and err.count("\n") == 1  # one line, with the way out
    code, _, err = cli("infer", image, "--out", tmp_path / "out2", "--backbone-weights", make("clip.pt"), *TINY)
    assert code == 1 and "clip.pt" in err and "could run code" in err and "weights_only=False" not in err
    assert not (tmp_path / "out1").exists() and not (tmp_path / "out2").exists()


def test_cli_train_resume_state_refused(evil, cli, tmp_path):
    make, _ = evil
    import numpy as np

    from ._files import write_png

    write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_png(tmp_path / "a_mask.png", np.full((8, 8), 255, np.uint8))  # training needs a mask
    record = {"image_path": "a.png", "label": 1, "class_name": "widget", "mask_path": "a_mask.png"}
    (tmp_path / "m.jsonl").write_text(json.dumps(record) + "\n")
    out = tmp_path / "run"
    out.mkdir()
    state = make("train_state.pt")
    os.replace(state, out / "train_state.pt")
    code, _, err = cli("train", "--manifest", tmp_path / "m.jsonl", "--dataset-root", tmp_path, "--out", out,
                       "--descriptions", '{"widget": "a widget"}', "--backbone-weights", "random", "--no-progress",
                       "--no-tensorboard", "--epochs-stage1", "1", "--epochs-stage2", "1", *TINY)
    assert code == 1 and "train_state.pt" in err and "Refusing to load" in err
