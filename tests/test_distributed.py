"""The one device check: a device that is not there is refused with its name, before anything loads."""

from __future__ import annotations

import pytest
import torch

from aaclip_med.distributed import check_device, init_distributed


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_cuda_without_a_gpu_says_so(no_gpu):
    for name in ("cuda", "cuda:0"):
        # a library call names its parameter; the CLI names the flag (below)
        with pytest.raises(ValueError, match=rf"device='{name}': no CUDA device is available .*use device=cpu"):
            check_device(name)
    with pytest.raises(ValueError, match="no CUDA device is available"):
        init_distributed("cuda")  # bare "cuda" used to fail in torch.cuda.set_device with a cryptic message
    assert check_device("cpu") == torch.device("cpu") and check_device(None) is None


def test_gpu_index_beyond_the_count_and_unknown_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device='cuda:5': this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        check_device("cuda:5")
    with pytest.raises(ValueError, match=r"device='gpu': not a device name \(cpu, cuda, cuda:N"):
        check_device("gpu")


def test_cli_refuses_cuda_without_a_gpu_before_the_model_loads(no_gpu, tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    import aaclip_med.model
    from aaclip_med.cli import main

    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setattr(aaclip_med.model, "build_aaclip", lambda *a, **k: pytest.fail("the model was loaded"))
    code = main(["infer", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--backbone", "aaclip-tiny",
                 "--backbone-weights", "random", "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 1 and "--device cuda: no CUDA device is available" in err and "use --device=cpu" in err
