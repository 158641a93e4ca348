"""Manifest runs: the predictions directory that ``aaclip-med evaluate`` reads (docs/dev/interfaces.md).

``maps/NNNNNN.npy`` holds the raw float32 (H, W) map of manifest line NNNNNN (0-based) at the
source slice's native size, which is the ground-truth mask's size (the data layer refuses masks of
another size); ``model_maps/NNNNNN.npy`` the raw (S, S) map at the model's input size, which the
paper protocol scores. Lines sharing a source are one unit of the run loop (a volume is loaded once), and
lines of the same class, modality and domain are batched across sources. Per line,
``records/NNNNNN.json`` (its predictions.jsonl entry) is written after its map and serves as the
done-marker for resume; rank 0 finally writes ``predictions.jsonl`` in manifest order.

A line's preset is its own ``modality`` key, else the run's; ``auto`` is decided once per source
on the whole loaded source and recorded on the line.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import load_image
from aaclip_med.data.slicing import SliceVolume
from aaclip_med.files import atomic_path, json_line, write_text_atomic
from aaclip_med.inference.errors import short_error
from aaclip_med.inference.layout import PREDICTIONS_FILE
from aaclip_med.inference.predictor import Predictor
from aaclip_med.inference.volume import resolve_case_modality
from aaclip_med.keys import Keys
from aaclip_med.presets import resolve_modality_name

__all__ = ["ManifestJob", "group_records", "PREDICTIONS_FILE"]

logger = logging.getLogger(__name__)



def group_records(records: list[dict]) -> list[tuple[str, list[int]]]:
    """(image_path, manifest indices) for each source, in first-appearance order."""
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(str(record[Keys.IMAGE_PATH]), []).append(index)
    return list(groups.items())


class _GroupLoader:
    """Picklable loader of one group's source: (slices its lines ask for, preset per line, why)."""

    def __init__(self, root: Path, records: list[dict], modality: str) -> None:
        self.root, self.records, self.modality = root, records, modality

    def __call__(self, group: tuple[str, list[int]]) -> tuple[list, list[str], str]:
        image_path, indices = group
        image = load_image(self.root / image_path)
        names = [self.records[i].get(Keys.MODALITY) for i in indices]
        reason = "given"
        if not all(names):
            choice = resolve_case_modality(image, self.modality)
            reason = choice.reason
            names = [resolve_modality_name(n) if n else choice.name for n in names]
        if image.ndim == 3:
            return [image] * len(indices), names, reason
        slice_indices = [self.records[i].get(Keys.SLICE_INDEX) for i in indices]
        if any(s is None for s in slice_indices):
            raise ValueError(f"{self.root / image_path}: a volume needs 'slice_index' on every manifest line.")
        slices = []
        for line, k in zip(indices, slice_indices, strict=True):
            try:
                slices += SliceVolume()(image, indices=[int(k)])
            except DataError as err:  # name the line (1-based, as an editor shows it)
                raise DataError(err.path, f"{err.problem} (manifest line {line + 1})") from err
        return slices, names, reason


def _line(index: int, record: Mapping, scores: tuple[float, float, float], modality: str, domain: str) -> dict:
    return {"index": index, "image_path": record[Keys.IMAGE_PATH], "mask_path": record.get(Keys.MASK_PATH) or "",
            "class_name": record[Keys.CLASS_NAME], "label": record[Keys.LABEL], "image_score": scores[0],
            "global_score": scores[1], "map_max": scores[2], "map_path": f"maps/{index:06d}.npy",
            "model_map_path": f"model_maps/{index:06d}.npy", "modality": modality, "domain": domain}


class _LineBatcher:
    """Collects manifest lines across sources into full batches of equal (description, modality, domain).

    Plain-image manifests have one line per source; predicting each alone would run the network
    at batch size 1. A batch that fails is retried line by line so one bad line cannot fail others.
    """

    def __init__(self, predictor: Predictor, write: Callable[[int, tuple, tuple, str, str], None]) -> None:
        self.predictor, self.write = predictor, write
        self.pending: dict[tuple, list[tuple[int, object]]] = {}
        self.failed: dict[int, str] = {}

    def add(self, key: tuple[str, str, str], index: int, image) -> None:
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
                except Exception as err:  # noqa: BLE001 - reported per source by the run loop
                    self.failed[item[0]] = short_error(err)

    def _predict(self, key: tuple, items: list) -> None:
        description, modality, domain = key
        out = self.predictor.predict_slices([image for _, image in items], description, modality, domain,
                                            keep_model_maps=True)
        for n, (index, _) in enumerate(items):
            scores = (float(out.image_score[n]), float(out.global_score[n]), float(out.map_max[n]))
            self.write(index, (out.maps[n], out.model_maps[n]), scores, modality, domain)


class ManifestJob:
    """Manifest lines -> the predictions directory (see the module docstring).

    Args:
        predictor: the batched predictor.
        records: the manifest lines.
        root: the folder their paths are relative to.
        out_dir: the predictions directory.
        descriptions: class name -> description for every class of the manifest.
        modality: the run's preset for lines without one ("auto": per source).
        domain: the run's domain for lines without one (None: from each line's preset).
        on_choice: called (where, preset, reason) when ``auto`` picks a preset.
    """

    noun = "source"

    def __init__(self, predictor: Predictor, records: list[dict], root: Path, out_dir: Path,
                 descriptions: Mapping[str, str], modality: str, domain: str | None,
                 on_choice: Callable[[str, str, str], None] | None = None) -> None:
        self.predictor, self.records, self.root, self.out_dir = predictor, records, root, out_dir
        self.descriptions, self.domain, self.on_choice = descriptions, domain, on_choice
        self.load = _GroupLoader(root, records, modality)
        self.batcher = _LineBatcher(predictor, self._write_line)

    def units(self) -> list[tuple[str, list[int]]]:
        return group_records(self.records)

    def unit_id(self, group: tuple[str, list[int]]) -> str:
        return group[0]

    def unit_path(self, group: tuple[str, list[int]]) -> str:
        return str(self.root / group[0])

    def _record_path(self, index: int) -> Path:
        return self.out_dir / "records" / f"{index:06d}.json"

    def is_done(self, group: tuple[str, list[int]]) -> bool:
        return all(self._record_path(i).is_file() for i in group[1])

    def has_finished_work(self) -> bool:
        return any((self.out_dir / "records").glob("*.json"))

    def clear(self) -> None:
        for folder in ("records", "maps", "model_maps"):
            shutil.rmtree(self.out_dir / folder, ignore_errors=True)
        (self.out_dir / PREDICTIONS_FILE).unlink(missing_ok=True)

    def process(self, group: tuple[str, list[int]], loaded: tuple[list, list[str], str]) -> None:
        slices, names, reason = loaded
        if self.on_choice is not None:
            self.on_choice(f"source {group[0]}", names[0], reason)
        for index, image, name in zip(group[1], slices, names, strict=True):
            record = self.records[index]
            domain = self.predictor.domain_for(name, record.get(Keys.DOMAIN) or self.domain)
            self.batcher.add((self.descriptions[record[Keys.CLASS_NAME]], name, domain), index, image)

    def finish(self) -> dict[str, str]:
        self.batcher.finish()
        failed = {}
        for image_path, indices in self.units():
            errors = [self.batcher.failed[i] for i in indices if i in self.batcher.failed]
            if errors:
                failed[image_path] = errors[0]
        return failed

    def _write_line(self, index: int, maps: tuple, scores: tuple, modality: str, domain: str) -> None:
        for folder, amap in zip(("maps", "model_maps"), maps, strict=True):  # native size, then S x S
            with atomic_path(self.out_dir / folder / f"{index:06d}.npy") as tmp:
                with open(tmp, "wb") as handle:
                    np.save(handle, amap.astype(np.float32), allow_pickle=False)
        line = _line(index, self.records[index], scores, modality, domain)
        write_text_atomic(self._record_path(index), json_line(line))

    def merge(self, groups: list) -> list[Path]:
        """Write predictions.jsonl when every line has a record (else leave it out: evaluate would fail)."""
        count = len(self.records)
        missing = [i for i in range(count) if not self._record_path(i).is_file()]
        if missing:
            logger.error("%d manifest line(s) have no prediction (first: %d); %s not written, re-run to resume",
                         len(missing), missing[0], PREDICTIONS_FILE)
            return []
        lines = [self._record_path(i).read_text(encoding="utf-8").strip() for i in range(count)]
        return [write_text_atomic(self.out_dir / PREDICTIONS_FILE, "\n".join(lines) + "\n")]
