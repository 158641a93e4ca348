"""Reading what evaluation needs: manifest, predictions directory, maps, masks, source images.

The predictions directory follows docs/dev/interfaces.md: ``predictions.jsonl`` (one line per
manifest line, in manifest order), ``maps/NNNNNN.npy`` (float32 (H, W) at the source's size, raw),
``model_maps/NNNNNN.npy`` (float32 (S, S), the map at the model's input size, raw; the ``paper``
protocol scores these, as the published runs did) and ``run.json``. Ground truth always comes
from the manifest and the dataset root, never from the predictions; masks and images are read by
the data layer (:func:`aaclip_med.data.masks.read_mask`, :func:`aaclip_med.data.loading.load_image`),
so evaluation counts exactly the mask pixels that training and inference see.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import INTENSITY_MAX, load_image
from aaclip_med.data.manifest import check_relative_path
from aaclip_med.data.masks import read_mask, resize_mask
from aaclip_med.data.slicing import SliceVolume

__all__ = [
    "Sample", "read_jsonl", "read_run", "load_samples", "load_map", "load_model_map", "load_mask", "load_overlay_image",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One evaluated image: ground truth from the manifest, scores from the predictions."""

    index: int
    class_name: str
    label: float
    image_path: str
    mask_path: str
    slice_index: int | None
    map_path: str
    model_map_path: str  # "" when the predictions directory has no S x S maps
    image_score: float
    global_score: float
    map_max: float
    domain: str


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file, skipping blank lines.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: naming the file and line of a malformed record.
    """
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                msg = f"{path}:{number}: not valid JSON ({err.msg})"
                raise ValueError(msg) from err
            if not isinstance(row, dict):
                msg = f"{path}:{number}: expected a JSON object, got {type(row).__name__}"
                raise ValueError(msg)
            rows.append(row)
    return rows


def read_run(predictions_dir: Path) -> dict:
    """Read ``run.json`` of a predictions directory ({} with a warning when it is missing)."""
    path = Path(predictions_dir) / "run.json"
    if not path.is_file():
        logger.warning("%s is missing: the report will not record the run configuration", path)
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        msg = f"{path}: not valid JSON ({err.msg})"
        raise ValueError(msg) from err


def _field(row: dict, key: str, where: str):
    if key not in row:
        msg = f"{where}: missing key {key!r}"
        raise ValueError(msg)
    return row[key]


def _sample(entry: dict, pred: dict, where: str, default_domain: str) -> Sample:
    slice_index = entry.get("slice_index")
    return Sample(
        index=int(pred.get("index", -1)),
        class_name=str(_field(entry, "class_name", where)),
        label=float(_field(entry, "label", where)),
        image_path=str(_field(entry, "image_path", where)),
        mask_path=str(entry.get("mask_path") or ""),
        slice_index=None if slice_index is None else int(slice_index),
        map_path=str(_field(pred, "map_path", where)),
        model_map_path=str(pred.get("model_map_path") or ""),
        image_score=float(_field(pred, "image_score", where)),
        global_score=float(pred.get("global_score", float("nan"))),
        map_max=float(pred.get("map_max", float("nan"))),
        domain=str(pred.get("domain") or entry.get("domain") or default_domain),
    )


def load_samples(manifest: Path, predictions_dir: Path, default_domain: str) -> list[Sample]:
    """Pair every manifest line with its prediction line (same order, same image_path).

    Args:
        manifest: JSON-lines manifest (ground truth).
        predictions_dir: directory holding ``predictions.jsonl``.
        default_domain: domain when neither file names one.

    A prediction with a null ``image_score`` (unscored, with its ``reason``) is left out of the
    samples with a warning naming its line: a made-up number would change every metric.

    Raises:
        ValueError: when the two files do not describe the same images.
    """
    entries = read_jsonl(Path(manifest))
    if not entries:
        msg = f"{manifest}: the manifest holds no records (an empty dataset); nothing to evaluate"
        raise ValueError(msg)
    pred_file = Path(predictions_dir) / "predictions.jsonl"
    preds = read_jsonl(pred_file)
    if len(entries) != len(preds):
        msg = f"{pred_file} has {len(preds)} lines but {manifest} has {len(entries)}; run inference on this manifest"
        raise ValueError(msg)
    samples = []
    for number, (entry, pred) in enumerate(zip(entries, preds, strict=True), start=1):
        where = f"{pred_file}:{number}"
        for key in ("image_path", "mask_path"):
            if entry.get(key):
                check_relative_path(str(entry[key]), f"{manifest}:{number}")
        if str(pred.get("image_path", entry.get("image_path"))) != str(entry.get("image_path")):
            msg = f"{where}: image_path {pred.get('image_path')!r} differs from line {number} of {manifest}"
            raise ValueError(msg)
        if pred.get("image_score", 0.0) is None:  # unscored (e.g. no foreground): no number to rank
            logger.warning("%s: %s is unscored (%s); left out of the metrics", where, entry.get("image_path"),
                           pred.get("reason") or "no reason given")
            continue
        samples.append(_sample(entry, pred, where, default_domain))
    return samples


def _read_map(path: Path) -> np.ndarray:
    try:
        score_map = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        msg = f"{path}: cannot read the anomaly map ({err})"
        raise ValueError(msg) from err
    if score_map.ndim != 2:
        msg = f"{path}: anomaly map must be 2D (H, W), got shape {score_map.shape}"
        raise ValueError(msg)
    return score_map


def load_map(predictions_dir: Path, sample: Sample) -> np.ndarray:
    """Load the raw (H, W) anomaly map of ``sample`` at the source's size (memory-mapped, read-only)."""
    return _read_map(Path(predictions_dir) / sample.map_path)


def load_model_map(predictions_dir: Path, sample: Sample) -> np.ndarray:
    """Load the raw (S, S) anomaly map of ``sample`` at the model's input size (memory-mapped).

    Raises:
        ValueError: the predictions line has no ``model_map_path`` (written by an older
            ``aaclip-med infer``), or the file is unreadable.
    """
    if not sample.model_map_path:
        msg = (f"{Path(predictions_dir) / 'predictions.jsonl'}: line {sample.index} ({sample.image_path}) has no "
               "'model_map_path': the paper protocol scores the S x S maps the model produced, which this "
               "predictions directory does not hold; re-run `aaclip-med infer --manifest` to write model_maps/, "
               "or use --protocol deployment")
        raise ValueError(msg)
    return _read_map(Path(predictions_dir) / sample.model_map_path)


def _mask_volume(path: Path):
    stat = Path(path).stat()
    return _decoded_mask_volume(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)  # the slices of a class come volume by volume: two are enough
def _decoded_mask_volume(path: str, size: int, mtime_ns: int):
    return load_image(path)


def load_mask(dataset_root: Path, sample: Sample, shape: tuple[int, int], resize: bool = False) -> np.ndarray:
    """Binary (H, W) ground truth of ``sample``; all zeros for a normal image without mask.

    The mask is read and binarised by the data layer (one mask rule for training, inference and
    evaluation: non-zero, or > 127 in JPEG files).

    Args:
        dataset_root: root the manifest paths are relative to.
        sample: the sample.
        shape: shape of the prediction map.
        resize: resize the mask to ``shape`` with PIL NEAREST (the paper protocol's S x S masks);
            otherwise the mask must already have that shape.

    Raises:
        ValueError: when the mask is unreadable (a DataError naming the file), or of another shape
            than the map (``resize`` off).
    """
    if not sample.mask_path:
        if sample.label:
            logger.warning(
                "anomalous image %s has no mask_path: its pixels count as normal", sample.image_path
            )
        return np.zeros(shape, dtype=bool)
    path = Path(dataset_root) / sample.mask_path
    volume = None if sample.slice_index is None else _mask_volume  # a volume's mask: decoded once, not per slice
    mask = read_mask(path, sample.slice_index, load_volume=volume)[0]  # a DataError (a ValueError) names the file
    if resize:
        mask = resize_mask(mask, shape)
    mask = mask.numpy() != 0
    if mask.shape != tuple(shape):
        msg = f"{path}: mask shape {mask.shape} differs from the prediction map shape {tuple(shape)}"
        raise ValueError(msg)
    return mask


def load_overlay_image(dataset_root: Path, sample: Sample) -> np.ndarray | None:
    """The source image (or the manifest line's slice) for overlays: (H, W) or (H, W, 3) in [0, 1].

    Read by the data layer's :func:`aaclip_med.data.loading.load_image`; 8-bit images are divided
    by 255, others stretched between their 1st and 99.5th percentiles. None (with a warning) when
    the source cannot be read: the report is still written, without this picture.
    """
    path = Path(dataset_root) / sample.image_path
    try:
        image = load_image(path)
    except DataError as err:
        logger.warning("cannot read %s for the example overlays (%s)", path, err)
        return None
    scale = image.meta.get(INTENSITY_MAX)
    if image.ndim == 4:
        image = SliceVolume()(image, indices=[int(sample.slice_index or 0)])[0]
    array = np.moveaxis(image.as_tensor().numpy(), 0, -1)  # (H, W, C)
    array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    if scale:
        return np.clip(array / float(scale), 0.0, 1.0)
    low, high = np.percentile(array, [1, 99.5])
    return np.clip((array - low) / max(float(high - low), 1e-6), 0.0, 1.0)
