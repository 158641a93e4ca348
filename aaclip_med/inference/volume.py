"""One loaded source (volume or 2D image) -> anomaly map on the source grid + per-slice scores.

A volume (1, X, Y, Z) is cut along its acquisition axis (:class:`aaclip_med.data.slicing.SliceVolume`),
every slice is predicted, each map is resized to the slice's native size and the maps are put
back with :func:`aaclip_med.data.slicing.restack_slices`, so the result has exactly the source's
spatial shape and affine. A 2D source (C, H, W) is one slice and gives a (1, H, W) map.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from monai.data import MetaTensor
from torch import nn

from aaclip_med.data.slicing import SliceVolume, restack_slices
from aaclip_med.inference.predictor import Predictor

__all__ = ["CaseResult", "SliceScore", "predict_case", "predict_volume"]

logger = logging.getLogger(__name__)


class SliceScore(NamedTuple):
    """Raw scores of one slice (spec section 5); ``slice_index`` is 0 for 2D sources."""

    slice_index: int
    image_score: float
    global_score: float
    map_max: float


class CaseResult(NamedTuple):
    """Outputs of one source."""

    anomaly_map: MetaTensor  # (1, *source spatial shape) float32 with the source affine
    slices: list[SliceScore]  # in slice order

    @property
    def case_score(self) -> float:
        """Case score = max of the slice image scores (the most anomalous slice decides)."""
        return max(s.image_score for s in self.slices)


def predict_case(
    predictor: Predictor, image: MetaTensor, description: str, slicer: SliceVolume | None = None
) -> CaseResult:
    """Predict every slice of ``image`` and restack the maps on its grid.

    Args:
        predictor: the batched predictor.
        image: (C, H, W) 2D source or (1, X, Y, Z) volume, as returned by
            :func:`aaclip_med.data.loading.load_image` (meta ``affine`` in RAS mm).
        description: class description for the text anchors (e.g. "scan").
        slicer: how to cut volumes (default: every slice along the acquisition axis).

    Returns:
        :class:`CaseResult`; voxels of slices the slicer skipped are 0.
    """
    slices = (slicer or SliceVolume())(image)
    if not slices:
        raise ValueError(f"{image.meta.get('filename_or_obj', 'image')}: the slicer kept no slice.")
    out = predictor.predict_slices(slices, description)
    metas = [s.meta for s in slices]
    score_map = restack_slices(out.maps, metas)
    scores = [
        SliceScore(int(m["slice_index"]), float(a), float(b), float(c))
        for m, a, b, c in zip(metas, out.image_score, out.global_score, out.map_max, strict=True)
    ]
    return CaseResult(score_map, scores)


def predict_volume(
    model: nn.Module | Predictor,
    volume: MetaTensor,
    description: str = "scan",
    modality: str = "ct",
    **predictor_kwargs,
) -> MetaTensor:
    """Anomaly map of one volume or 2D image on its own grid (for pipelines and notebooks).

    Args:
        model: an AAClip or a ready :class:`Predictor` (then ``modality`` and kwargs are ignored).
        volume: (1, X, Y, Z) or (C, H, W) MetaTensor with its affine.
        description: class description ("scan" for the BMAD-style medical sets).
        modality: modality preset for the intensity handling.
        predictor_kwargs: ``domain``, ``batch_size``, ``precision``, ``device`` of :class:`Predictor`.

    Returns:
        (1, *spatial) float32 MetaTensor with the source affine; ``meta["slice_scores"]`` holds the
        per-slice scores as dicts and ``meta["case_score"]`` the max over slices.
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model, modality=modality, **predictor_kwargs)
    result = predict_case(predictor, volume, description)
    out = result.anomaly_map
    out.meta["slice_scores"] = [s._asdict() for s in result.slices]
    out.meta["case_score"] = float(np.max([s.image_score for s in result.slices]))
    return out
