"""Deterministic, resumable, rank-sharded batches.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)`` only, and each sample's
augmentation is seeded from ``(seed, e, index)`` only. So a run resumed in the middle of an epoch
sees exactly the batches an uninterrupted run would, and N processes with batch b see the same
samples (and augmentations) as one process with batch N * b, whatever the DataLoader workers do.

The permutation is case-local: a manifest of volumes has one record per slice, and a plain random
order over them visits a different volume almost every slice, so once the cohort outgrows the
decoded-volume cache (``aaclip_med.data.cache``) every slice decodes its whole volume again. So
the cases (records sharing an image file) are put in a random order, and the slices of each
window of ``case_window`` consecutive cases are shuffled together: a cache that holds
``case_window`` volumes reads each volume once per epoch (per loading process). Files of one
record each (2D images) get a uniform random order as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from aaclip_med.data.manifest import record_case
from aaclip_med.keys import Keys
from aaclip_med.training.record import sample_records
from aaclip_med.workers import ignore_interrupt

__all__ = ["EpochBatches", "SeededSamples", "case_keys", "case_local_order", "collate_samples", "sample_seed"]

logger = logging.getLogger(__name__)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample of one epoch (stable across processes and resumes)."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + index)
    return int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


class SeededSamples(Dataset):
    """Items ``(epoch, index)`` -> ``transform(data[index])`` with the transform seeded per item.

    Args:
        data: a sequence of sample dictionaries (e.g. a ``ManifestDataset`` without transform).
        transform: a (random) MONAI transform with ``set_random_state``, or None.
        seed: the run's seed.
    """

    def __init__(self, data: Sequence[dict], transform: Callable | None, seed: int) -> None:
        self.data, self.transform, self.seed = data, transform, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        item = self.data[index]
        if self.transform is None:
            return item
        if hasattr(self.transform, "set_random_state"):
            self.transform.set_random_state(seed=sample_seed(self.seed, epoch, index))
        return self.transform(item)


def case_keys(data: Sequence) -> list[Hashable]:
    """One key per sample naming its case (:func:`aaclip_med.data.manifest.record_case`: the slice
    records of a volume share it), else the sample's own index. Read from the manifest records, so
    no image is loaded."""
    keys: list[Hashable] = []
    for index, record in enumerate(sample_records(data)):
        case = record_case(record) if isinstance(record, Mapping) else None
        keys.append(case if case is not None else index)
    return keys


def case_local_order(cases: Sequence[Hashable], seed: int, window: int) -> torch.Tensor:
    """A permutation of ``range(len(cases))``: cases in random order, slices shuffled within each
    window of ``window`` consecutive cases. Drawn from ``seed`` only.

    Args:
        cases: the case key of each sample (see :func:`case_keys`).
        seed: seed of this epoch's order.
        window: cases mixed together (>= 1).
    """
    members: dict[Hashable, list[int]] = {}
    for index, case in enumerate(cases):
        members.setdefault(case, []).append(index)
    groups = list(members.values())
    gen = torch.Generator().manual_seed(seed)
    case_order = torch.randperm(len(groups), generator=gen).tolist()
    parts = []
    for start in range(0, len(case_order), window):
        indices = torch.tensor([i for c in case_order[start : start + window] for i in groups[c]])
        parts.append(indices[torch.randperm(len(indices), generator=gen)])
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def collate_samples(items: list[dict]) -> dict[str, Any]:
    """Stack images (B, 3, S, S), masks (B, 1, S, S) and labels (B,); class names as a list."""
    images = torch.stack([torch.as_tensor(it[Keys.IMAGE]).as_subclass(torch.Tensor).float() for it in items])
    masks = []
    for it, image in zip(items, images):
        mask = it.get(Keys.MASK)
        mask = torch.zeros(1, *image.shape[-2:]) if mask is None else torch.as_tensor(mask).as_subclass(torch.Tensor)
        masks.append(mask.float().reshape(1, *mask.shape[-2:]))
    labels = torch.tensor([float(it[Keys.LABEL]) for it in items])
    return {
        Keys.IMAGE: images,
        Keys.MASK: torch.stack(masks),
        Keys.LABEL: labels,
        Keys.CLASS_NAME: [str(it[Keys.CLASS_NAME]) for it in items],
    }


class EpochBatches:
    """Batches of one process for a given epoch, optionally skipping the first ones (resume).

    Args:
        samples: the seeded dataset.
        batch_size: per-process batch size.
        seed: seed of the epoch permutations.
        rank, world_size: this process and the number of processes.
        shuffle: draw a new order each epoch (training) or keep manifest order.
        num_workers: DataLoader workers.
        case_window: cases whose slices are shuffled together (see the module docstring).
    """

    def __init__(
        self,
        samples: SeededSamples,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        num_workers: int = 0,
        case_window: int = 2,
    ) -> None:
        if len(samples) == 0:
            raise ValueError("The training data set is empty; check the manifest (and --shot).")
        if case_window < 1:
            raise ValueError(f"case_window must be >= 1 case, got {case_window}.")
        self.samples, self.batch_size, self.seed = samples, batch_size, seed
        self.rank, self.world_size, self.shuffle, self.num_workers = rank, world_size, shuffle, num_workers
        self.case_window = case_window
        self._cases = case_keys(samples.data) if shuffle else None
        self._iter = None

    def indices(self, epoch: int) -> list[int]:
        """This rank's sample indices of ``epoch`` (padded by wrapping so every rank has as many)."""
        n = len(self.samples)
        order = case_local_order(self._cases, self.seed + epoch, self.case_window) if self.shuffle else torch.arange(n)
        total = -(-n // self.world_size) * self.world_size
        order = torch.cat([order] * (-(-total // n)))[:total]
        return order[self.rank :: self.world_size].tolist()

    def __len__(self) -> int:
        """Batches per epoch."""
        per_rank = -(-len(self.samples) // self.world_size)
        return -(-per_rank // self.batch_size)

    def start_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Prepare the batches of ``epoch`` (0-based), the first ``skip_batches`` left out."""
        keys = [(epoch, i) for i in self.indices(epoch)][skip_batches * self.batch_size :]
        loader = DataLoader(
            self.samples, batch_size=self.batch_size, sampler=keys, num_workers=self.num_workers,
            collate_fn=collate_samples, worker_init_fn=ignore_interrupt if self.num_workers else None,
        )
        self._iter = iter(loader)

    def next(self) -> dict[str, Any]:
        """The next batch of the current epoch."""
        if self._iter is None:
            raise RuntimeError("EpochBatches.start_epoch must be called before next().")
        return next(self._iter)
