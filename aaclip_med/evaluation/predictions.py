"""Reading what evaluation needs: manifest, predictions directory, maps, masks, source images.

The predictions directory follows docs/dev/interfaces.md: ``predictions.jsonl`` (one line per
manifest line, in manifest order), ``maps/NNNNNN.npy`` (float32 (H, W), raw) and ``run.json``.
Ground truth always comes from the manifest and the dataset root, never from the predictions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

__all__ = ["Sample", "read_jsonl", "read_run", "load_samples", "load_map", "load_mask", "load_image"]

logger = logging.getLogger(__name__)

_PIL_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}


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


def _inside_root(value: str, where: str) -> str:
    """``value`` if it is a relative path that stays inside the dataset root, else a ValueError.

    Ground truth is read from ``dataset_root / path``; an absolute path or ``..`` would read a
    file outside the folder the user named. (Same rule as ``aaclip_med.data.manifest``, kept here
    so that evaluation does not import torch/MONAI.)
    """
    posix, windows = PurePosixPath(value), PureWindowsPath(value)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        msg = f"{where}: path {value!r} is absolute; manifest paths must be relative to the dataset root"
        raise ValueError(msg)
    if ".." in posix.parts or ".." in windows.parts:
        msg = f"{where}: path {value!r} escapes the dataset root ('..')"
        raise ValueError(msg)
    return value


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
                _inside_root(str(entry[key]), f"{manifest}:{number}")
        if str(pred.get("image_path", entry.get("image_path"))) != str(entry.get("image_path")):
            msg = f"{where}: image_path {pred.get('image_path')!r} differs from line {number} of {manifest}"
            raise ValueError(msg)
        samples.append(_sample(entry, pred, where, default_domain))
    return samples


def load_map(predictions_dir: Path, sample: Sample) -> np.ndarray:
    """Load the raw (H, W) anomaly map of ``sample`` (memory-mapped, read-only)."""
    path = Path(predictions_dir) / sample.map_path
    try:
        score_map = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        msg = f"{path}: cannot read the anomaly map ({err})"
        raise ValueError(msg) from err
    if score_map.ndim != 2:
        msg = f"{path}: anomaly map must be 2D (H, W), got shape {score_map.shape}"
        raise ValueError(msg)
    return score_map


def _read_array(path: Path, slice_index: int | None) -> np.ndarray:
    suffix = (
        "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".nii.gz") else path.suffix.lower()
    )
    if suffix in _PIL_SUFFIXES:
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img)
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in {".nii", ".nii.gz"}:
        import nibabel

        data = np.asarray(nibabel.load(path).dataobj)
        # A volume is sliced along its last spatial axis, the axis manifests index slices on.
        if data.ndim == 3 and slice_index is not None:
            return data[..., slice_index]
        return np.squeeze(data)
    msg = f"{path}: unsupported file type {suffix!r} (use PNG/JPEG/TIFF/BMP, .npy or NIfTI)"
    raise ValueError(msg)


def load_mask(dataset_root: Path, sample: Sample, shape: tuple[int, int]) -> np.ndarray:
    """Binary (H, W) ground truth of ``sample``; all zeros for a normal image without mask.

    Args:
        dataset_root: root the manifest paths are relative to.
        sample: the sample.
        shape: shape of the prediction map, which must equal the mask's.

    Raises:
        ValueError: when the mask is unreadable, missing for an anomalous image, or of another
            shape than the map.
    """
    if not sample.mask_path:
        if sample.label:
            logger.warning(
                "anomalous image %s has no mask_path: its pixels count as normal", sample.image_path
            )
        return np.zeros(shape, dtype=bool)
    path = Path(dataset_root) / sample.mask_path
    try:
        mask = _read_array(path, sample.slice_index)
    except (OSError, FileNotFoundError) as err:
        msg = f"{path}: cannot read the ground-truth mask ({err})"
        raise ValueError(msg) from err
    if mask.ndim == 3:  # RGB(A) masks: anomalous where any channel is set
        mask = (mask != 0).any(axis=-1)
    if mask.shape != tuple(shape):
        msg = f"{path}: mask shape {mask.shape} differs from the prediction map shape {tuple(shape)}"
        raise ValueError(msg)
    return mask != 0


def load_image(dataset_root: Path, sample: Sample) -> np.ndarray | None:
    """The source image as (H, W) or (H, W, 3) for overlays, or None when not a plain image."""
    path = Path(dataset_root) / sample.image_path
    if path.suffix.lower() not in _PIL_SUFFIXES:
        return None
    try:
        from PIL import Image

        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as err:
        logger.warning("cannot read %s for the example overlays (%s)", path, err)
        return None
