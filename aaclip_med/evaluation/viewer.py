"""``viewer.html`` beside the report: every volume case in NiiVue, example images with a before/after slider.

Layout written into the report folder (all relative, so the folder opens from disk or any server)::

    viewer.html                 the page (static; the cases come from viewer/cases.js)
    viewer/niivue.umd.js        NiiVue, vendored from npm (aaclip_med/resources/niivue), + LICENSE-niivue
    viewer/viewer.js, .css      the page's own code
    viewer/cases.js             what each case shows: files, value range, threshold, peak voxel
    viewer/<key>/source.nii.gz  the source volume as inference loaded it (its NIfTI header is kept)
    viewer/<key>/anomaly.nii.gz the map as evaluated, restacked on the source grid (float32)
    viewer/<key>/truth.nii.gz   the ground-truth mask on the same grid (uint8)
    viewer/<key>/volumes.js     the same three files, base64, for pages opened from disk
    viewer/<key>/image.png, overlay.png   plain-image examples: before / after

Browsers refuse ``fetch`` of ``file://`` URLs, so a page opened from disk loads a case's volumes
through its ``volumes.js`` (a script tag, which browsers allow); served over http(s) it loads the
``.nii.gz`` files themselves. Both carry the same bytes.

Slices the manifest does not list have no prediction: their anomaly voxels are NaN (shown as
"not predicted", never drawn) and their truth voxels 0.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from aaclip_med.evaluation.cases import Case, SourceVolumes, group_cases, short_path
from aaclip_med.evaluation.class_eval import ClassResult
from aaclip_med.evaluation.plots import blend_rgb
from aaclip_med.evaluation.predictions import load_map, load_mask
from aaclip_med.files import atomic_path, write_text_atomic
from aaclip_med.inference.writers.nifti import write_nifti_volume

__all__ = ["VIEWER_PAGE", "ASSETS", "NIIVUE_VERSION", "ViewerInput", "write_viewer", "case_key"]

logger = logging.getLogger(__name__)

VIEWER_PAGE = "viewer.html"
ASSETS = "viewer"
NIIVUE_VERSION = "0.69.0"
_STATIC = {("niivue", "niivue.umd.js"): "niivue.umd.js", ("niivue", "LICENSE"): "LICENSE-niivue",
           ("viewer", "viewer.js"): "viewer.js", ("viewer", "viewer.css"): "viewer.css"}
_VOLUME_LAYERS = ("source", "anomaly", "truth")


@dataclass(frozen=True)
class ViewerInput:
    """What the viewer needs besides the class results.

    Attributes:
        predictions_dir: where ``maps/`` are.
        dataset_root: where sources and masks are.
        sources: loader shared with the report's tiles (a volume is read once).
        image_examples: (class, image_path) of the plain images shown as report examples.
    """

    predictions_dir: Path
    dataset_root: Path
    sources: SourceVolumes
    image_examples: frozenset[tuple[str, str]]


def case_key(number: int, image_path: str) -> str:
    """Folder name and URL anchor of a case: a number plus the source's name (no other identifier)."""
    name = re.sub(r"\.(nii\.gz|nii|png|jpe?g|tiff?|bmp|dcm)$", "", Path(image_path.replace("\\", "/")).name, flags=re.I)
    return f"{number:03d}_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "case")


def _class_range(result: ClassResult, predictions_dir: Path) -> tuple[float, float]:
    """(min, max) of the class's maps as evaluated: one colour scale for all its cases."""
    low, high = np.inf, -np.inf
    for sample in result.samples:
        values = result.normaliser.map(load_map(predictions_dir, sample))
        low, high = min(low, float(np.min(values))), max(high, float(np.max(values)))
    return low, max(high, low + 1e-12)


def _threshold(result: ClassResult, value_range: tuple[float, float]) -> tuple[float, str]:
    if result.pixel is not None and np.isfinite(result.pixel.f1_threshold):
        return float(result.pixel.f1_threshold), "the class's pixel F1-max threshold"
    return (value_range[0] + value_range[1]) / 2, "the middle of the class's range (pixel F1-max not defined)"


def _stack(result: ClassResult, case: Case, shape: tuple[int, ...], inputs: ViewerInput):
    """(anomaly float32 with NaN where not predicted, truth uint8) on the source grid."""
    anomaly = np.full(shape, np.nan, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.uint8)
    for position in case.positions:
        sample = result.samples[position]
        raw = load_map(inputs.predictions_dir, sample)
        if raw.shape != shape[:2] or not 0 <= int(sample.slice_index) < shape[2]:
            msg = f"map {sample.map_path} {raw.shape} does not fit slice {sample.slice_index} of a {shape} volume"
            raise ValueError(msg)
        anomaly[..., sample.slice_index] = result.normaliser.map(raw)
        truth[..., sample.slice_index] = load_mask(inputs.dataset_root, sample, raw.shape)
    return anomaly, truth


def _source_array(array: np.ndarray) -> np.ndarray:
    """int16 when the voxels are integers in range (CT in HU: half the size), else float32."""
    if np.all(np.mod(array, 1) == 0) and array.min() >= -32768 and array.max() <= 32767:
        return array.astype(np.int16)
    return array.astype(np.float32)


def _volume_files(folder: Path, key: str, layers: dict, affine: np.ndarray, nifti: Path | None) -> dict:
    files = {}
    for name, array in layers.items():
        write_nifti_volume(array, affine, folder / f"{name}.nii.gz", source=nifti)
        files[name] = f"{ASSETS}/{key}/{name}.nii.gz"
    encoded = {name: base64.b64encode((folder / f"{name}.nii.gz").read_bytes()).decode("ascii") for name in layers}
    script = f"window.aaclipVolumes = window.aaclipVolumes || {{}};\nwindow.aaclipVolumes[{json.dumps(key)}] = {json.dumps(encoded)};\n"
    write_text_atomic(folder / "volumes.js", script)
    files["script"] = f"{ASSETS}/{key}/volumes.js"
    return files


def _volume_entry(out_dir: Path, key: str, result: ClassResult, case: Case, inputs: ViewerInput,
                  value_range: tuple[float, float]) -> dict:
    volume = inputs.sources.volume(case.image_path)
    anomaly, truth = _stack(result, case, volume.array.shape, inputs)
    peak = np.unravel_index(int(np.nanargmax(anomaly)), anomaly.shape)
    layers = {"source": _source_array(volume.array), "anomaly": anomaly, "truth": truth}
    threshold, why = _threshold(result, value_range)
    return {
        "kind": "volume",
        "dims": [int(n) for n in volume.array.shape],
        "slices": sorted(int(result.samples[p].slice_index) for p in case.positions),
        "range": list(value_range),
        "threshold": threshold,
        "threshold_reason": why,
        "peak_voxel": [int(i) for i in peak],
        "peak_mm": [float(v) for v in (volume.affine @ np.array([*peak, 1.0]))[:3]],
        "peak_value": float(anomaly[peak]),
        "ras_to_voxel": np.linalg.inv(volume.affine).tolist(),  # the viewer reports file voxel indices
        "display_range": list(volume.display_range),
        "files": _volume_files(out_dir / ASSETS / key, key, layers, volume.affine, volume.nifti),
    }


def _save_png(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def _image_entry(out_dir: Path, key: str, result: ClassResult, case: Case, inputs: ViewerInput,
                 value_range: tuple[float, float]) -> dict:
    sample = result.samples[case.positions[0]]
    # display at the source's size (under the paper protocol too, whose scored maps are S x S)
    score_map = result.normaliser.map(load_map(inputs.predictions_dir, sample))
    mask = load_mask(inputs.dataset_root, sample, score_map.shape)
    image = inputs.sources.display(sample)
    folder = out_dir / ASSETS / key
    files = {"overlay": f"{ASSETS}/{key}/overlay.png"}
    _save_png(blend_rgb(image, score_map, mask, value_range), folder / "overlay.png")
    if image is not None:  # 'before': the image alone
        rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, -1)
        before = (np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8)  # display() gives [0, 1]
        _save_png(np.ascontiguousarray(before), folder / "image.png")
        files["image"] = f"{ASSETS}/{key}/image.png"
    return {"kind": "image", "dims": [int(n) for n in score_map.shape], "range": list(value_range), "files": files}


def _copy_static(out_dir: Path) -> None:
    root = resources.files("aaclip_med") / "resources"
    for (folder, name), target in _STATIC.items():
        with resources.as_file(root / folder / name) as source, atomic_path(out_dir / ASSETS / target) as tmp:
            shutil.copyfile(source, tmp)
    with resources.as_file(root / "viewer" / VIEWER_PAGE) as source, atomic_path(out_dir / VIEWER_PAGE) as tmp:
        shutil.copyfile(source, tmp)


def _common(result: ClassResult, case: Case, row: dict, key: str) -> dict:
    return {"key": key, "class_name": case.class_name, "title": short_path(case.image_path),
            "image_path": case.image_path, "label": row["label"], "score": row["score"],
            "top_slice": row["top_slice"], "modality": row["modality"], "protocol": str(result.normaliser.protocol)}


def write_viewer(out_dir: Path, results: list[ClassResult], rows: list[dict], inputs: ViewerInput) -> dict[tuple[str, str], str]:
    """Write the viewer page and its files for every volume case and every example image.

    Args:
        out_dir: the report folder.
        results: the evaluated classes.
        rows: the report's case rows (:func:`aaclip_med.evaluation.cases.case_rows`), same order.
        inputs: see :class:`ViewerInput`.

    Returns:
        (class, image_path) -> key of each case in the viewer (link ``viewer.html#case=<key>``);
        empty when no case qualifies (then nothing is written).
    """
    by_case = {(r["class_name"], r["image_path"]): r for r in rows}
    entries, keys, number = [], {}, 0
    for result in results:
        cases = [c for c in group_cases(result) if c.volume or (c.class_name, c.image_path) in inputs.image_examples]
        if not cases:
            continue
        value_range = _class_range(result, inputs.predictions_dir)
        for case in cases:
            number += 1
            key = case_key(number, case.image_path)
            build = _volume_entry if case.volume else _image_entry
            try:
                entry = build(out_dir, key, result, case, inputs, value_range)
            except Exception as err:  # noqa: BLE001 - one unreadable source must not cost the whole report
                logger.warning("no viewer for %s (%s)", case.image_path, err)
                continue
            entries.append({**_common(result, case, by_case[(case.class_name, case.image_path)], key), **entry})
            keys[(case.class_name, case.image_path)] = key
    if entries:
        _copy_static(out_dir)
        meta = {"niivue_version": NIIVUE_VERSION, "cases": entries}
        write_text_atomic(out_dir / ASSETS / "cases.js", f"window.aaclipCases = {json.dumps(meta)};\n")
        logger.info("viewer: %d case(s) in %s", len(entries), out_dir / VIEWER_PAGE)
    return keys
