"""Two gloo processes with batch b train to the weights of one process with batch 2b, through
PyTorch's DistributedDataParallel around the stage's trainable parts only."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import aaclip_med.training.engine as engine_module
from aaclip_med.training import StageObjective, freeze_for_stage, run_training
from tests.conftest import make_tiny_model
from tests.training._runs import tiny_config
from tests.training._synthetic import make_samples


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    wrapped = []

    class RecordingDDP(engine_module.DistributedDataParallel):
        def __init__(self, module, **kwargs):
            wrapped.append(sorted({name.split(".")[1] for name, _ in module.named_parameters()}))
            super().__init__(module, **kwargs)

    engine_module.DistributedDataParallel = RecordingDDP
    try:
        model = make_tiny_model(0)
        run_training(model, tiny_config(out, batch1=2, batch2=1, epochs=1), make_samples(8))
        torch.save(model.adapter_state_dict(), os.path.join(out, f"rank{rank}.pt"))
        with open(os.path.join(out, f"wrapped{rank}.json"), "w") as handle:
            json.dump(wrapped, handle)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path):
    single = make_tiny_model(0)
    run_training(single, tiny_config(tmp_path / "one", batch1=4, batch2=2, epochs=1), make_samples(8))

    out = tmp_path / "two"
    out.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)

    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]
    expected = single.adapter_state_dict()
    for key, value in expected.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), f"ranks disagree on {key}"
        torch.testing.assert_close(ranks[0][key], value, rtol=1e-4, atol=1e-5)
    assert (out / "adapters.safetensors").is_file()  # rank 0 wrote the outputs
    for rank in range(2):  # one DDP per stage, holding that stage's trainable modules and nothing else
        wrapped = json.loads((out / f"wrapped{rank}.json").read_text())
        assert wrapped == [["text_adapters", "text_proj"], ["det_head", "image_adapters", "seg_heads"]]


@pytest.mark.parametrize("stage", [1, 2])
def test_stage_objective_registers_exactly_the_trainable_parameters(stage):
    model = make_tiny_model(0)
    trainable = freeze_for_stage(model, stage)
    objective = StageObjective(model, stage, lambda batch: {})
    assert [id(p) for p in objective.parameters()] == [id(p) for p in trainable]
    assert sum(p.numel() for p in objective.parameters()) < sum(p.numel() for p in model.clip.parameters())
