"""Deterministic, rank-sharded, resumable batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aaclip_med.data.dataset import ManifestDataset
from aaclip_med.training.batches import (
    EpochBatches,
    SeededSamples,
    case_local_order,
    collate_samples,
    sample_seed,
)
from tests._synthetic import write_nifti
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


# ---------------------------------------------------------------- case-local order: one read per volume
_CASES, _DEPTH = 6, 5
_VOLUME_BYTES = 4 * 5 * _DEPTH * 4  # one float32 (1, 4, 5, 5) volume


def _slice_cohort(tmp_path, cache_volumes: int) -> ManifestDataset:
    """6 volumes of 5 slices, one manifest record per slice; a cache with room for ``cache_volumes``."""
    records = []
    for case in range(_CASES):
        data = np.arange(4 * 5 * _DEPTH, dtype=np.float32).reshape(4, 5, _DEPTH) + 1000 * case
        write_nifti(tmp_path / f"case{case}.nii.gz", data)
        records += [{"image_path": f"case{case}.nii.gz", "slice_index": z, "label": 0, "class_name": "widget"}
                    for z in range(_DEPTH)]
    return ManifestDataset(records, tmp_path, cache_bytes=cache_volumes * _VOLUME_BYTES)


def test_cohort_larger_than_the_cache_is_read_once_per_epoch(tmp_path):
    dataset = _slice_cohort(tmp_path, cache_volumes=2)  # the cohort is 3x the cache
    batches = EpochBatches(SeededSamples(dataset, None, seed=1), batch_size=4, seed=1, case_window=2)
    seen = [image for batch in _drain(batches, 0) for image in batch]
    assert dataset.volume_cache.stats()["misses"] == _CASES  # each volume read once in the epoch
    _drain(batches, 1)  # again once each (less the cases still cached from the end of epoch 0)
    assert 2 * _CASES - 2 <= dataset.volume_cache.stats()["misses"] <= 2 * _CASES
    values = sorted(float(image[0, 0, 0]) for image in seen)
    assert values == sorted(1000 * c + z for c in range(_CASES) for z in range(_DEPTH))  # every slice once
    # the control: a plain random order over the same slices reads volumes again and again
    control = _slice_cohort(tmp_path / "control", cache_volumes=2)
    for index in torch.randperm(len(control), generator=torch.Generator().manual_seed(1)).tolist():
        control[index]
    assert control.volume_cache.stats()["misses"] > 2 * _CASES


def test_case_local_order_is_seeded_and_keeps_windows_of_cases_together():
    cases = [f"case{i // 3}" for i in range(15)] + ["photo_a.png", "photo_b.png"]  # 5 volumes of 3, 2 images
    first = case_local_order(cases, seed=7, window=2).tolist()
    assert sorted(first) == list(range(17))
    assert case_local_order(cases, seed=7, window=2).tolist() == first  # the same order on resume
    assert case_local_order(cases, seed=8, window=2).tolist() != first
    visits = [cases[i] for i in first]
    for case in set(cases):  # a case's slices lie in one stretch shared with at most one other case
        where = [pos for pos, c in enumerate(visits) if c == case]
        assert len(set(visits[where[0] : where[-1] + 1])) <= 2
    assert len(set(visits[:6])) > 1  # and slices of two cases are mixed, not one case after the other
    one_case = case_local_order(cases, seed=7, window=1).tolist()
    runs = [cases[i] for i in one_case]
    assert sum(a != b for a, b in zip(runs, runs[1:])) == 6  # 7 cases, each visited in one stretch


def test_case_window_must_be_positive():
    with pytest.raises(ValueError, match="case_window must be >= 1"):
        EpochBatches(SeededSamples(make_samples(2, size=28), None, 0), 1, 0, case_window=0)
