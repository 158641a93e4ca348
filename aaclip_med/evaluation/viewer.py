"""``viewer.html`` beside the report: every volume case in NiiVue, example images with a before/after slider.

Layout written into the report folder (all relative, so the folder opens from disk or any server)::

    viewer.html                 the page (static; the cases come from viewer/cases.js)
    viewer/niivue.umd.js        NiiVue, vendored from npm (aaclip_med/resources/niivue), + LICENSE-niivue
    viewer/viewer.js, .css      the page's own code
    viewer/cases.js             what each case shows: files, value range, threshold, peak voxel
    viewer/<key>/volumes.js     the case's three volumes, gzipped NIfTI in base64: the source as
                                inference loaded it (a NIfTI source's header is kept), the map as
                                evaluated restacked on the source grid (float32), and the ground
                                truth on the same grid (uint8)
    viewer/<key>/image.png, overlay.png   plain-image examples: before / after

Browsers refuse ``fetch`` of ``file://`` URLs, so the page loads a case's volumes through its
``volumes.js`` (a script tag, which browsers allow), from disk and over http(s) alike: each volume
is stored once. :func:`read_volumes` turns a ``volumes.js`` back into NIfTI images.

Slices the manifest does not list have no prediction: their anomaly voxels are NaN (shown as
"not predicted", never drawn) and their truth voxels 0.

The viewer reads nothing itself: the report's one pass over the cases
(:mod:`aaclip_med.evaluation.case_pass`) hands it each case's source, maps and masks.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np

from aaclip_med.data.display import to_rgb8
from aaclip_med.evaluation.cases import CaseSamples, Volume, short_path
from aaclip_med.evaluation.class_eval import ClassResult
from aaclip_med.evaluation.plots import blend_rgb
from aaclip_med.files import atomic_path, write_text_atomic
from aaclip_med.inference.writers.nifti import overlay_header

__all__ = ["VIEWER_PAGE", "ASSETS", "NIIVUE_VERSION", "ViewerWriter", "case_key", "read_volumes"]

logger = logging.getLogger(__name__)

VIEWER_PAGE = "viewer.html"
ASSETS = "viewer"
NIIVUE_VERSION = "0.69.0"
_STATIC = {("niivue", "niivue.umd.js"): "niivue.umd.js", ("niivue", "LICENSE"): "LICENSE-niivue",
           ("viewer", "viewer.js"): "viewer.js", ("viewer", "viewer.css"): "viewer.css"}
_VOLUMES_ASSIGN = "window.aaclipVolumes[{key}] = "
_GZIP_LEVEL = 1  # nibabel's level for .nii.gz: the maps are noise-like floats, a higher level gains little


def case_key(number: int, image_path: str) -> str:
    """Folder name and URL anchor of a case: a number plus the source's name (no other identifier)."""
    name = re.sub(r"\.(nii\.gz|nii|png|jpe?g|tiff?|bmp|dcm)$", "", Path(image_path.replace("\\", "/")).name, flags=re.I)
    return f"{number:03d}_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "case")


def _threshold(result: ClassResult) -> tuple[float, str]:
    if result.pixel is not None and np.isfinite(result.pixel.f1_threshold):
        return float(result.pixel.f1_threshold), "the class's pixel F1-max threshold"
    low, high = result.value_range
    return (low + high) / 2, "the middle of the class's range (pixel F1-max not defined)"


def _source_array(array: np.ndarray) -> np.ndarray:
    """int16 when the voxels are integers in range (CT in HU: half the size), else float32."""
    if np.all(np.mod(array, 1) == 0) and array.min() >= -32768 and array.max() <= 32767:
        return array.astype(np.int16)
    return array.astype(np.float32)


def _nifti_gz(array: np.ndarray, affine: np.ndarray, nifti: Path | None) -> bytes:
    """A gzipped NIfTI of ``array`` with the source's spatial header (see ``overlay_header``)."""
    image = nib.Nifti1Image(array, None, header=overlay_header(array.shape, affine, nifti))
    return gzip.compress(image.to_bytes(), compresslevel=_GZIP_LEVEL, mtime=0)


def _write_volumes(folder: Path, key: str, layers: dict[str, np.ndarray], volume: Volume) -> str:
    """Write ``volumes.js`` layer by layer (one volume's base64 in memory at a time, not all three)."""
    with atomic_path(folder / "volumes.js") as tmp, open(tmp, "w", encoding="ascii") as out:
        out.write("window.aaclipVolumes = window.aaclipVolumes || {};\n" + _VOLUMES_ASSIGN.format(key=json.dumps(key)) + "{")
        for number, (name, array) in enumerate(layers.items()):
            out.write(f'{", " if number else ""}{json.dumps(name)}: "')
            out.write(base64.b64encode(_nifti_gz(array, volume.affine, volume.nifti)).decode("ascii"))
            out.write('"')
        out.write("};\n")
    return f"{ASSETS}/{key}/volumes.js"


def read_volumes(path: str | Path) -> dict[str, nib.Nifti1Image]:
    """The NIfTI images stored in a case's ``volumes.js`` (source, anomaly, truth), e.g. to save them as files."""
    text = Path(path).read_text(encoding="ascii")
    body = text[text.index("] = ") + len("] = "):].strip().rstrip(";")
    return {name: nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(data)))
            for name, data in json.loads(body).items()}


def _save_png(rgb: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def _stack(result: ClassResult, volume: Volume, maps: dict[int, np.ndarray], masks: dict[int, np.ndarray]):
    """(anomaly float32 with NaN where not predicted, truth uint8) on the source grid."""
    shape = volume.array.shape
    anomaly = np.full(shape, np.nan, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.uint8)
    for position, score_map in maps.items():
        sample = result.samples[position]
        if score_map.shape != shape[:2] or not 0 <= int(sample.slice_index) < shape[2]:
            msg = f"map {sample.map_path} {score_map.shape} does not fit slice {sample.slice_index} of a {shape} volume"
            raise ValueError(msg)
        anomaly[..., sample.slice_index] = score_map
        truth[..., sample.slice_index] = masks[position]
    return anomaly, truth


def _volume_entry(folder: Path, key: str, result: ClassResult, volume: Volume,
                  maps: dict[int, np.ndarray], masks: dict[int, np.ndarray]) -> dict:
    anomaly, truth = _stack(result, volume, maps, masks)
    peak = np.unravel_index(int(np.nanargmax(anomaly)), anomaly.shape)
    layers = {"source": _source_array(volume.array), "anomaly": anomaly, "truth": truth}
    threshold, why = _threshold(result)
    return {
        "kind": "volume",
        "dims": [int(n) for n in volume.array.shape],
        "slices": sorted(int(result.samples[p].slice_index) for p in maps),
        "range": list(result.value_range),
        "threshold": threshold,
        "threshold_reason": why,
        "peak_voxel": [int(i) for i in peak],
        "peak_mm": [float(v) for v in (volume.affine @ np.array([*peak, 1.0]))[:3]],
        "peak_value": float(anomaly[peak]),
        "ras_to_voxel": np.linalg.inv(volume.affine).tolist(),  # the viewer reports file voxel indices
        "display_range": list(volume.display_range),
        "files": {"volumes": _write_volumes(folder, key, layers, volume)},
    }


def _image_entry(folder: Path, key: str, result: ClassResult, image: np.ndarray | None,
                 score_map: np.ndarray, mask: np.ndarray) -> dict:
    files = {"overlay": f"{ASSETS}/{key}/overlay.png"}
    _save_png(blend_rgb(image, score_map, mask, result.value_range), folder / "overlay.png")
    if image is not None:  # 'before': the image alone
        _save_png(to_rgb8(image), folder / "image.png")
        files["image"] = f"{ASSETS}/{key}/image.png"
    return {"kind": "image", "dims": [int(n) for n in score_map.shape], "range": list(result.value_range), "files": files}


def _copy_static(out_dir: Path) -> None:
    root = resources.files("aaclip_med") / "resources"
    for (folder, name), target in _STATIC.items():
        with resources.as_file(root / folder / name) as source, atomic_path(out_dir / ASSETS / target) as tmp:
            shutil.copyfile(source, tmp)
    with resources.as_file(root / "viewer" / VIEWER_PAGE) as source, atomic_path(out_dir / VIEWER_PAGE) as tmp:
        shutil.copyfile(source, tmp)


class ViewerWriter:
    """Writes the viewer's files case by case as the report pass reaches them, then the page.

    Args:
        out_dir: the report folder (nothing is written elsewhere).
        rows: the report's case rows (:func:`aaclip_med.evaluation.cases.case_rows`).
    """

    def __init__(self, out_dir: Path, rows: list[dict]) -> None:
        self.out_dir = Path(out_dir)
        self._rows = {(r["class_name"], r["image_path"]): r for r in rows}
        self._entries: list[dict] = []
        self._numbered = 0  # cases tried, shown or not: a key is never reused
        self.keys: dict[tuple[str, str], str] = {}

    def _add(self, result: ClassResult, case: CaseSamples, build: Callable[[Path, str], dict]) -> None:
        self._numbered += 1
        key = case_key(self._numbered, case.image_path)
        try:
            entry = build(self.out_dir / ASSETS / key, key)
        except Exception as err:  # noqa: BLE001 - one case that cannot be shown must not cost the whole report
            logger.warning("no viewer for %s (%s)", case.image_path, err)
            return
        row = self._rows[(case.class_name, case.image_path)]
        self._entries.append({
            "key": key, "class_name": case.class_name, "title": short_path(case.image_path),
            "image_path": case.image_path, "label": row["label"], "score": row["score"], "top_slice": row["top_slice"],
            "modality": row["modality"], "protocol": str(result.normaliser.protocol), **entry,
        })
        self.keys[(case.class_name, case.image_path)] = key

    def add_volume(self, result: ClassResult, case: CaseSamples, volume: Volume,
                   maps: dict[int, np.ndarray], masks: dict[int, np.ndarray]) -> None:
        """A volume case: its source, and its maps (as evaluated) and masks by position in ``result.samples``."""
        self._add(result, case, lambda folder, key: _volume_entry(folder, key, result, volume, maps, masks))

    def add_image(self, result: ClassResult, case: CaseSamples, image: np.ndarray | None,
                  score_map: np.ndarray, mask: np.ndarray) -> None:
        """A plain-image case: its display image (None: unreadable), its map as evaluated and its mask."""
        self._add(result, case, lambda folder, key: _image_entry(folder, key, result, image, score_map, mask))

    def finish(self) -> dict[tuple[str, str], str]:
        """Write the page, its assets and cases.js (nothing when no case was added).

        Returns:
            (class, image_path) -> key of each case in the viewer (link ``viewer.html#case=<key>``).
        """
        if self._entries:
            _copy_static(self.out_dir)
            meta = {"niivue_version": NIIVUE_VERSION, "cases": self._entries}
            write_text_atomic(self.out_dir / ASSETS / "cases.js", f"window.aaclipCases = {json.dumps(meta)};\n")
            logger.info("viewer: %d case(s) in %s", len(self._entries), self.out_dir / VIEWER_PAGE)
        return self.keys
