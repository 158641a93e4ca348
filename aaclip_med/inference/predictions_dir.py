"""Manifest runs: the predictions directory that ``aaclip-med evaluate`` reads (docs/dev/interfaces.md).

``maps/NNNNNN.npy`` holds the raw float32 (H, W) map of manifest line NNNNNN (0-based) at the
source slice's native size, which is the ground-truth mask's size (the data layer refuses masks of
another size). Lines sharing a source are loaded together (a volume is loaded once), and lines of the same
class, modality and domain are batched across sources. Per line,
``records/NNNNNN.json`` (its predictions.jsonl entry) is written after its map and serves as the
done-marker for resume; rank 0 finally writes ``predictions.jsonl`` in manifest order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from aaclip_med.data.loading import load_image
from aaclip_med.data.slicing import SliceVolume
from aaclip_med.distributed import DistContext, barrier, gather_objects, shard
from aaclip_med.files import atomic_path, remove_stale_temporaries, write_text_atomic
from aaclip_med.inference.errors import short_error
from aaclip_med.inference.predictor import Predictor
from aaclip_med.inference.prefetch import prefetch
from aaclip_med.keys import Keys

__all__ = ["run_manifest", "group_records"]

logger = logging.getLogger(__name__)


def group_records(records: list[dict]) -> list[tuple[str, list[int]]]:
    """(image_path, manifest indices) for each source, in first-appearance order."""
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(str(record[Keys.IMAGE_PATH]), []).append(index)
    return list(groups.items())


class _GroupLoader:
    """Picklable loader of one group's source and the slices its lines ask for."""

    def __init__(self, root: Path, records: list[dict]) -> None:
        self.root, self.records = root, records

    def __call__(self, group: tuple[str, list[int]]) -> list:
        image_path, indices = group
        image = load_image(self.root / image_path)
        if image.ndim == 3:
            return [image] * len(indices)
        slice_indices = [self.records[i].get(Keys.SLICE_INDEX) for i in indices]
        if any(s is None for s in slice_indices):
            raise ValueError(f"{self.root / image_path}: a volume needs 'slice_index' on every manifest line.")
        return SliceVolume()(image, indices=[int(s) for s in slice_indices])


def _line(index: int, record: Mapping, scores: tuple[float, float, float], domain: str) -> dict:
    return {"index": index, "image_path": record[Keys.IMAGE_PATH], "mask_path": record.get(Keys.MASK_PATH) or "",
            "class_name": record[Keys.CLASS_NAME], "label": record[Keys.LABEL], "image_score": scores[0],
            "global_score": scores[1], "map_max": scores[2], "map_path": f"maps/{index:06d}.npy", "domain": domain}


def _write_line(out_dir: Path, index: int, record: Mapping, amap: np.ndarray, scores: tuple, domain: str) -> None:
    with atomic_path(out_dir / "maps" / f"{index:06d}.npy") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, amap.astype(np.float32), allow_pickle=False)
    write_text_atomic(out_dir / "records" / f"{index:06d}.json", json.dumps(_line(index, record, scores, domain)))


class _LineBatcher:
    """Collects manifest lines across sources into full batches of equal (description, modality, domain).

    Plain-image manifests have one line per source; predicting each alone would run the network
    at batch size 1. A batch that fails is retried line by line so one bad line cannot fail others.
    """

    def __init__(self, predictor: Predictor, records: list[dict], out_dir: Path, descriptions: Mapping[str, str]):
        self.predictor, self.records, self.out_dir, self.descriptions = predictor, records, out_dir, descriptions
        self.pending: dict[tuple, list[tuple[int, object]]] = {}
        self.failed: dict[int, str] = {}

    def add(self, index: int, image) -> None:
        record = self.records[index]
        key = (self.descriptions[record[Keys.CLASS_NAME]], record.get(Keys.MODALITY),
               str(record.get(Keys.DOMAIN) or self.predictor.domain))
        self.pending.setdefault(key, []).append((index, image))
        if len(self.pending[key]) >= self.predictor.batch_size:
            self._flush(key)

    def finish(self) -> None:
        for key in list(self.pending):
            self._flush(key)

    def _flush(self, key: tuple) -> None:
        items = self.pending.pop(key)
        try:
            self._predict(key, items)
        except Exception:  # noqa: BLE001 - isolate the failing line(s)
            for item in items:
                try:
                    self._predict(key, [item])
                except Exception as err:  # noqa: BLE001 - logged by the caller, the run goes on
                    self.failed[item[0]] = short_error(err)

    def _predict(self, key: tuple, items: list) -> None:
        description, modality, domain = key
        out = self.predictor.predict_slices([image for _, image in items], description, modality, domain)
        for n, (index, _) in enumerate(items):
            scores = (float(out.image_score[n]), float(out.global_score[n]), float(out.map_max[n]))
            _write_line(self.out_dir, index, self.records[index], out.maps[n], scores, domain)


def _record_done(out_dir: Path, index: int) -> bool:
    return (out_dir / "records" / f"{index:06d}.json").is_file()


def run_manifest(
    predictor: Predictor, records: list[dict], root: Path, out_dir: Path, descriptions: Mapping[str, str],
    info: DistContext, workers: int = 0,
) -> dict:
    """Predict every manifest line (this rank's share of sources); rank 0 writes predictions.jsonl.

    Args:
        descriptions: class name -> description for every class of the manifest.

    Returns:
        Summary {"total", "done", "skipped", "failed", "out_dir"} counted in sources (groups).
    """
    if info.is_main:
        remove_stale_temporaries(out_dir)
    barrier(info)
    groups = shard(group_records(records), info)
    todo = [g for g in groups if not all(_record_done(out_dir, i) for i in g[1])]
    status = {"done": 0, "skipped": len(groups) - len(todo), "failed": []}
    loader = _GroupLoader(root, records)
    batcher = _LineBatcher(predictor, records, out_dir, descriptions)
    loaded: list[tuple[str, list[int]]] = []
    for (image_path, indices), slices, error in tqdm(prefetch(todo, loader, workers), total=len(todo), desc="infer", unit="source", disable=None):
        if error is not None:
            logger.error("source %s failed: %s", root / image_path, short_error(error))
            status["failed"].append({"image_path": image_path, "error": short_error(error)})
            continue
        for index, image in zip(indices, slices, strict=True):
            batcher.add(index, image)
        loaded.append((image_path, indices))
    batcher.finish()
    for image_path, indices in loaded:
        errors = [batcher.failed[i] for i in indices if i in batcher.failed]
        if errors:
            logger.error("source %s failed: %s", root / image_path, errors[0])
            status["failed"].append({"image_path": image_path, "error": errors[0]})
        else:
            status["done"] += 1
    parts = gather_objects(status, info)
    summary = {"total": len(group_records(records)), "done": sum(p["done"] for p in parts),
               "skipped": sum(p["skipped"] for p in parts), "failed": [f for p in parts for f in p["failed"]],
               "out_dir": str(out_dir)}
    if info.is_main:
        _merge(out_dir, len(records))
    barrier(info)
    return summary


def _merge(out_dir: Path, count: int) -> None:
    """Write predictions.jsonl when every line has a record (else leave it out: evaluate would fail)."""
    missing = [i for i in range(count) if not _record_done(out_dir, i)]
    if missing:
        logger.error("%d manifest line(s) have no prediction (first: %d); predictions.jsonl not written, re-run to resume",
                     len(missing), missing[0])
        return
    lines = [(out_dir / "records" / f"{i:06d}.json").read_text(encoding="utf-8").strip() for i in range(count)]
    write_text_atomic(out_dir / "predictions.jsonl", "\n".join(lines) + "\n")
