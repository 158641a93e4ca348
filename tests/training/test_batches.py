"""Deterministic, rank-sharded, resumable batches."""

from __future__ import annotations

import torch

from aaclip_med.training.batches import EpochBatches, SeededSamples, collate_samples, sample_seed
from tests.training._synthetic import make_samples


class _Noise:
    """A random 'transform' with MONAI's set_random_state protocol: adds a seeded offset."""

    def set_random_state(self, seed=None, state=None):
        self.gen = torch.Generator().manual_seed(seed)
        return self

    def __call__(self, item):
        return {**item, "image": item["image"] + torch.rand(1, generator=self.gen)}


def _drain(batches: EpochBatches, epoch: int, skip: int = 0) -> list[torch.Tensor]:
    batches.start_epoch(epoch, skip)
    out = []
    for _ in range(len(batches) - skip):
        out.append(batches.next()["image"])
    return out


def test_ranks_cover_the_epoch_of_one_process_and_skip_resumes_exactly():
    samples = SeededSamples(make_samples(8, size=28), _Noise(), seed=3)
    one = EpochBatches(samples, batch_size=4, seed=3)
    r0, r1 = (EpochBatches(samples, 2, 3, rank=r, world_size=2) for r in (0, 1))
    assert len(one) == len(r0) == 2
    full = _drain(one, epoch=1)
    for step, batch in enumerate(full):
        shard = torch.cat([_drain(r0, 1)[step], _drain(r1, 1)[step]])
        assert sorted(shard.sum(dim=(1, 2, 3)).tolist()) == sorted(batch.sum(dim=(1, 2, 3)).tolist())
    assert torch.equal(_drain(one, 1, skip=1)[0], full[1])
    assert not torch.equal(_drain(one, 2)[0], full[0])  # a new order (and new augmentation) each epoch


def test_sample_seed_depends_on_every_part():
    seeds = {sample_seed(0, 0, 0), sample_seed(1, 0, 0), sample_seed(0, 1, 0), sample_seed(0, 0, 1)}
    assert len(seeds) == 4 and sample_seed(0, 1, 2) == sample_seed(0, 1, 2)


def test_collate_stacks_and_fills_missing_masks():
    items = make_samples(2, size=28)
    del items[0]["mask"]
    batch = collate_samples(items)
    assert batch["image"].shape == (2, 3, 28, 28) and batch["mask"].shape == (2, 1, 28, 28)
    assert batch["mask"][0].sum() == 0 and batch["mask"][1].sum() > 0
    assert batch["label"].tolist() == [0.0, 1.0] and batch["class_name"] == ["widget", "widget"]
