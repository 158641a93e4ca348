"""Cases of an evaluation (the manifest lines of one source), their labels, and their sources for display.

A manifest lists plain images one per line and volumes one line per slice; a *case* is one source:
an image, or a volume with the slices the manifest lists. The report's score table, its example
tiles and the viewer are organised by case.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from aaclip_med.data.display import display_image, display_range
from aaclip_med.data.errors import DataError
from aaclip_med.data.loading import INTENSITY_MAX, load_image
from aaclip_med.evaluation.class_eval import ClassResult
from aaclip_med.evaluation.predictions import Sample

__all__ = ["CaseSamples", "group_cases", "sample_label", "case_rows", "SourceVolumes", "Volume"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaseSamples:
    """The samples of one source within one class.

    Attributes:
        class_name: the class.
        image_path: the source, relative to the dataset root (a file, or a DICOM series folder).
        positions: positions of its samples in ``ClassResult.samples``, in manifest order.
        volume: whether the samples are slices of a volume (they carry a ``slice_index``).
    """

    class_name: str
    image_path: str
    positions: tuple[int, ...]
    volume: bool


def group_cases(result: ClassResult) -> list[CaseSamples]:
    """The cases of one class, in order of first appearance in the manifest."""
    groups: dict[str, list[int]] = {}
    for position, sample in enumerate(result.samples):
        groups.setdefault(sample.image_path, []).append(position)
    return [
        CaseSamples(result.class_name, path, tuple(positions),
             any(result.samples[p].slice_index is not None for p in positions))
        for path, positions in groups.items()
    ]


def short_path(image_path: str) -> str:
    """The last two parts of a source path: the (defect) folder and the file, e.g. ``broken_large/000.png``."""
    parts = PurePosixPath(str(image_path).replace("\\", "/")).parts
    return "/".join(parts[-2:])


def sample_label(sample: Sample, n_slices: int | None = None) -> str:
    """What a tile shows about its sample: class, folder/file and, for a volume, the slice index."""
    label = f"{sample.class_name} · {short_path(sample.image_path)}"
    if sample.slice_index is not None:
        label += f" · slice {sample.slice_index}" + (f" of {n_slices}" if n_slices else "")
    return label


def case_rows(results: list[ClassResult], modalities: dict[int, str], default_modality: str | None) -> list[dict]:
    """One row per case for the report's score table.

    Args:
        results: the evaluated classes.
        modalities: manifest line index -> modality preset named on that line.
        default_modality: the run's preset, used where the line names none.

    Returns:
        Rows {class_name, image_path, kind, n_samples, n_anomalous, label, score, top_slice, modality}:
        ``score`` is the highest evaluated image score of the case's samples (the score the metrics
        used) and ``top_slice`` the slice reaching it (None for images).
    """
    rows = []
    for result in results:
        for case in group_cases(result):
            scores = [result.image_scores[p] for p in case.positions]
            best = case.positions[int(np.argmax(scores))]
            samples = [result.samples[p] for p in case.positions]
            presets = sorted({modalities.get(s.index) or default_modality or "" for s in samples} - {""})
            rows.append({
                "class_name": case.class_name,
                "image_path": case.image_path,
                "kind": "volume" if case.volume else "image",
                "n_samples": len(samples),
                "n_anomalous": sum(1 for s in samples if s.label),
                "label": "anomalous" if any(s.label for s in samples) else "normal",
                "score": float(max(scores)),
                "top_slice": result.samples[best].slice_index,
                "modality": ", ".join(presets) or "not recorded",
            })
    return rows


@dataclass(frozen=True)
class Volume:
    """A source volume as inference loaded it.

    Attributes:
        array: (X, Y, Z) float32 voxels; the manifest's slice_index indexes the last axis.
        affine: (4, 4) voxel -> RAS mm.
        nifti: the source file when it is a NIfTI file (its header is kept by copies), else None.
        display_range: (low, high) display window over all voxels (:func:`aaclip_med.data.display.display_range`).
    """

    array: np.ndarray
    affine: np.ndarray
    nifti: Path | None
    display_range: tuple[float, float]

    def display_slice(self, index: int) -> np.ndarray:
        """Slice ``index`` as an (X, Y) display image in [0, 1], in the volume's window."""
        return display_image(self.array[..., index], value_range=self.display_range)


class SourceVolumes:
    """Loads sources for the report's tiles and the viewer.

    Sources are loaded exactly as inference loads them (:func:`aaclip_med.data.load_image`: DICOM
    series and NIfTI), so slice ``k`` of a volume is the slice whose map is ``maps/NNNNNN.npy``.
    A source is not kept: the report pass (:mod:`aaclip_med.evaluation.case_pass`) reads each case
    once and holds its volume while it cuts the tiles and the viewer's layers, so keeping it in the
    run's volume cache would only push out the mask volumes that the cache keeps for that pass.
    """

    def __init__(self, dataset_root: Path) -> None:
        self.dataset_root = Path(dataset_root)

    def volume(self, image_path: str) -> Volume:
        """The volume of ``image_path`` (relative to the dataset root).

        Raises:
            DataError: the source cannot be read (the message names the file).
            ValueError: the source is a 2D image.
        """
        path = self.dataset_root / image_path
        image = load_image(path)
        if image.ndim != 4:
            msg = f"{path}: expected a volume, got an image of shape {tuple(image.shape)}"
            raise ValueError(msg)
        array = image[0].as_tensor().numpy()  # a view: no copy of the decoded voxels
        nifti = path if path.name.lower().endswith((".nii", ".nii.gz")) else None
        return Volume(array, np.asarray(image.affine, dtype=np.float64), nifti, display_range(array))

    def image(self, sample: Sample) -> np.ndarray | None:
        """A plain image (or 2D DICOM/NIfTI) for display: (H, W) or (H, W, 3) in [0, 1]; None when unreadable (logged)."""
        path = self.dataset_root / sample.image_path
        try:
            image = load_image(path)
        except DataError as err:
            logger.warning("cannot read %s for the example tiles (%s)", path, err)
            return None
        return display_image(image, image.meta.get(INTENSITY_MAX))
