"""Streaming build of a reference memory: normal slices in, a bounded class memory out.

Slices are encoded batch by batch (:meth:`aaclip_med.inference.Predictor.encode`); each level's
patch features are appended to a buffer of fixed size. When the buffer passes its capacity (the
``max_mb`` budget shared by the levels and classes), a greedy k-center coreset
(:mod:`aaclip_med.adaptation.coreset`) shrinks it to half the capacity, in place, and the stream
goes on. So the features never take more than the cap plus one batch, whatever the number of
references (500 CT slices or 50,000), and the final memory is a coreset of coresets.

While streaming, the statistics of the combination rule (:mod:`aaclip_med.memory.scoring`)
are gathered on the same references: the zero-shot map and global score of every slice, and the
memory map of each slice *held out* from the memory, i.e. against the references added before it
and the other slices of its batch. That is how a new normal image scores (it is never in the
memory), whereas a reference scored against a memory holding itself would read about 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch

from aaclip_med.adaptation.coreset import select_coreset
from aaclip_med.errors import ParameterError
from aaclip_med.inference.calibration import PixelStats
from aaclip_med.memory.bank import ClassMemory
from aaclip_med.memory.scoring import max_cosine, search_dtype
from aaclip_med.model.smoothing import level_maps_to_map
from aaclip_med.units import in_mb, mb_to_bytes

__all__ = ["ReferenceSlices", "PatchStore", "build_class_memory", "MIN_REFERENCE_SLICES"]

logger = logging.getLogger(__name__)

MIN_REFERENCE_SLICES = 2  # the held-out statistics need another slice to compare with
_KEEP_FRACTION = 0.5  # a full buffer is reduced to this fraction of its capacity
_BANK_ROWS = 16384  # bank rows converted to the scoring dtype at a time while building


class ReferenceSlices(NamedTuple):
    """Normal slices of one source, ready to encode."""

    where: str  # the file (for messages)
    slices: list  # (C, H, W) loaded slices
    modality: str  # the preset they are preprocessed with


class PatchStore:
    """The features of one level, in a buffer of ``capacity`` + one batch rows (float16).

    Args:
        capacity: rows kept at most between batches.
        seed: seed of the coreset selections.
    """

    def __init__(self, capacity: int, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"a memory level needs room for at least one patch, got capacity {capacity}")
        self.capacity, self.seed = capacity, seed
        self.buffer: torch.Tensor | None = None
        self.size = 0
        self.seen = 0
        self.reductions = 0

    @property
    def features(self) -> torch.Tensor:
        """(size, D) float16 view of the kept rows."""
        if self.buffer is None:
            return torch.zeros(0, 0, dtype=torch.float16)
        return self.buffer[: self.size]

    def add(self, rows: torch.Tensor) -> None:
        """Append (P, D) rows; reduce to a coreset when the capacity is passed."""
        rows = rows.detach().to("cpu", torch.float16)
        need = self.size + rows.shape[0]
        if self.buffer is None or need > self.buffer.shape[0]:
            grown = torch.empty(max(need, self.capacity + rows.shape[0]), rows.shape[1], dtype=torch.float16)
            if self.buffer is not None:
                grown[: self.size] = self.buffer[: self.size]
            self.buffer = grown
        self.buffer[self.size : need] = rows
        self.size, self.seen = need, self.seen + rows.shape[0]
        if self.size > self.capacity:
            self.reduce(max(1, int(self.capacity * _KEEP_FRACTION)))

    def reduce(self, keep: int) -> None:
        """Keep a greedy k-center coreset of ``keep`` rows, moved to the front of the buffer in place."""
        chosen = select_coreset(self.features, keep, seed=self.seed + self.reductions)
        self.reductions += 1
        # ascending indices with chosen[i] >= i: each block reads rows not yet overwritten
        for start in range(0, chosen.shape[0], 4096):
            block = chosen[start : start + 4096]
            self.buffer[start : start + block.shape[0]] = self.buffer[block]
        self.size = int(chosen.shape[0])

    def finish(self) -> torch.Tensor:
        """The final (N, D) float16 features (a compact copy; the buffer is released)."""
        if self.size > self.capacity:
            self.reduce(self.capacity)
        out = self.features.clone()
        self.buffer = None
        return out


def _store_max_cosine(queries: torch.Tensor, store: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(Q,) max cosine of queries to the float16 store, converted block by block to ``dtype``."""
    best = torch.full((queries.shape[0],), -1.0)
    for start in range(0, store.shape[0], _BANK_ROWS):
        block = store[start : start + _BANK_ROWS].to(queries.device, dtype)
        best = torch.maximum(best, max_cosine(queries, block).cpu())
    return best


def _held_out_distances(levels: list[torch.Tensor], stores: list[PatchStore], grid: tuple[int, int],
                        dtype: torch.dtype) -> tuple[torch.Tensor, list[int]]:
    """(B', n, gh, gw) distances of the batch's images that have something to compare with, and their indices."""
    batch = levels[0].shape[0]
    usable = [i for i in range(batch) if batch > 1 or stores[0].size > 0]
    maps = []
    for feats, store in zip(levels, stores, strict=True):
        per_image = []
        for index in usable:
            query = feats[index].to(dtype)  # (L, D)
            best = torch.full((query.shape[0],), -1.0)
            if store.size:
                best = _store_max_cosine(query, store.features, dtype)
            others = torch.cat([feats[j] for j in range(batch) if j != index]) if batch > 1 else None
            if others is not None:
                best = torch.maximum(best, max_cosine(query, others.to(dtype)).cpu())
            per_image.append(1.0 - best.view(*grid))
        maps.append(torch.stack(per_image) if per_image else torch.zeros(0, *grid))
    return torch.stack(maps, dim=1), usable


class _Accumulator:
    """Statistics of the combination rule over the references (exact means and stds, constant memory)."""

    def __init__(self) -> None:
        self.zero_shot, self.memory = PixelStats(), PixelStats()
        self.global_scores = PixelStats()

    def stats(self) -> dict[str, float]:
        z_mean, z_std = self.zero_shot.mean_std()
        m_mean, m_std = self.memory.mean_std()
        g_mean, g_std = self.global_scores.mean_std()
        return {"zero_shot_mean": z_mean, "zero_shot_std": z_std, "memory_mean": m_mean, "memory_std": m_std,
                "global_mean": g_mean, "global_std": g_std}


def build_class_memory(predictor, class_name: str, description: str, sources: Iterable[ReferenceSlices],
                       capacity_bytes: int, seed: int = 0, domain: str | None = None) -> ClassMemory:
    """Encode every slice of ``sources`` and keep a bounded memory of their patch features.

    Args:
        predictor: an :class:`aaclip_med.inference.Predictor` (the network, precision, device, batch).
        class_name, description: the class and its text (the zero-shot statistics depend on it).
        sources: normal slices, source by source (loaded lazily by the caller's iterable).
        capacity_bytes: budget of this class's features (all levels, float16).
        seed: seed of the coreset selections.
        domain: the domain (default: the predictor's rule for the preset).

    Raises:
        ValueError: fewer than :data:`MIN_REFERENCE_SLICES` slices, or sources with different presets.
    """
    model = predictor.model
    n_levels, width = len(model.config.levels), int(model.embed_dim)
    capacity = capacity_bytes // (n_levels * width * 2)
    if capacity < 1:
        raise ParameterError("capacity_bytes", capacity_bytes, f"less than one patch of class {class_name!r} "
                             f"({n_levels * width * 2} bytes); raise it")
    per_slice = int(model.grid_size[0]) * int(model.grid_size[1])
    if capacity < per_slice:
        logger.warning("max_mb leaves room for %d patch(es) per level of class %r, fewer than the %d patches of one "
                       "slice: such a memory cannot cover normal anatomy and its scores mean little; give it at least "
                       "%.2f MB per class (the default 256 MB holds the patches of many slices)", capacity, class_name,
                       per_slice, in_mb(per_slice * n_levels * width * 2))
    stores = [PatchStore(capacity, seed + 7919 * level) for level in range(n_levels)]
    acc, dtype = _Accumulator(), search_dtype(predictor.precision, predictor.device)
    presets: dict[str, str] = {}
    pending: list = []
    count = 0
    for source in sources:
        presets.setdefault(source.modality, source.where)
        if len(presets) > 1:
            raise ValueError(f"the references of class {class_name!r} got different modality presets {presets} "
                             "(preset: first source); pass --modality to build from one kind of image")
        run_domain = predictor.domain_for(source.modality, domain)
        pending += source.slices
        count += len(source.slices)
        while len(pending) >= predictor.batch_size:
            _add_batch(predictor, pending[: predictor.batch_size], description, source.modality, run_domain, stores, acc, dtype)
            pending = pending[predictor.batch_size :]
    if count < MIN_REFERENCE_SLICES:
        raise ValueError(f"class {class_name!r} has {count} reference slice(s); a reference memory needs at least "
                         f"{MIN_REFERENCE_SLICES} normal slices")
    modality = next(iter(presets))
    run_domain = predictor.domain_for(modality, domain)
    if pending:
        _add_batch(predictor, pending, description, modality, run_domain, stores, acc, dtype)
    levels = [store.finish() for store in stores]
    memory = ClassMemory(class_name, description, modality, run_domain, levels, acc.stats(), count, stores[0].seen)
    logger.info("references of %r: kept %d of %d patches per level from %d slice(s)", class_name,
                memory.patches_kept, memory.patches_seen, count)
    return memory


def _add_batch(predictor, slices: Sequence, description: str, modality: str, domain: str,
               stores: list[PatchStore], acc: _Accumulator, dtype: torch.dtype) -> None:
    images = torch.stack([predictor.preprocess(s, modality) for s in slices])  # (B, 3, S, S)
    feats, pred = predictor.encode(images, description, domain)
    grid = tuple(predictor.model.grid_size)
    acc.zero_shot.add(pred.anomaly_map.numpy(), None)
    acc.global_scores.add(pred.global_score.numpy(), None)
    distances, usable = _held_out_distances(feats.levels, stores, grid, dtype)
    if usable:
        held_out = level_maps_to_map(distances, domain, tuple(pred.anomaly_map.shape[-2:]), sum_first=True)
        acc.memory.add(held_out.numpy(), None)
    for feats_level, store in zip(feats.levels, stores, strict=True):
        store.add(feats_level.reshape(-1, feats_level.shape[-1]))


def build_references(predictor, classes: dict[str, tuple[str, Iterable[ReferenceSlices]]], max_mb: float,
                     identity: dict, seed: int = 0, domain: str | None = None):
    """A :class:`~aaclip_med.memory.bank.ReferenceBank` of every class, within ``max_mb`` in all.

    Args:
        predictor: the predictor (network, precision, device, batch size).
        classes: class name -> (description, its reference slices).
        max_mb: budget of all features in MB (:data:`aaclip_med.units.MB`), shared equally by the classes.
        identity: what the file records (model fields and ``slice_axis``).
        seed: seed of the coreset selections.
        domain: the domain (default: from each preset).
    """
    from aaclip_med.memory.bank import ReferenceBank

    if not classes:
        raise ValueError("no references given: an empty set cannot make a reference memory")
    if not max_mb > 0:
        raise ParameterError("max_mb", max_mb, "must be positive")
    budget = mb_to_bytes(max_mb) // len(classes)
    patch_bytes = len(predictor.model.config.levels) * int(predictor.model.embed_dim) * 2
    if budget < patch_bytes:
        raise ParameterError("max_mb", max_mb, f"leaves {budget} bytes for each of {len(classes)} class(es): less "
                             f"than one patch ({patch_bytes} bytes); raise it")
    memories = {}
    for name, (description, sources) in classes.items():
        memories[name] = build_class_memory(predictor, name, description, sources, budget, seed, domain)
    return ReferenceBank(memories, dict(identity))
