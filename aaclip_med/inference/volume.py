"""One loaded source (volume or 2D image) -> anomaly map on the source grid + per-slice scores.

A volume (1, X, Y, Z) is cut along its slice axis (:class:`aaclip_med.data.slicing.SliceVolume`),
every kept slice is predicted, each map is resized to the slice's native size and the maps are put
back with :func:`aaclip_med.data.slicing.restack_slices`, so the result has exactly the source's
spatial shape and affine. A 2D source (C, H, W) is one slice and gives a (1, H, W) map.

Near-empty slices: each volume slice records its *foreground*, the fraction of its pixels above
the background level (-500 HU for CT presets, the volume's minimum otherwise). The case score is
the highest image score among slices with at least ``min_foreground`` of foreground, so a slice
holding a few voxels of tissue (whose normalised intensities are mostly noise) cannot decide it.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
from monai.data import MetaTensor
from torch import nn

from aaclip_med.data.modality import AIR_HU, ModalityChoice, detect_modality
from aaclip_med.data.slicing import SliceVolume, restack_slices
from aaclip_med.inference.options import SliceOptions
from aaclip_med.inference.predictor import Predictor
from aaclip_med.presets import AUTO, get_modality

__all__ = ["CaseResult", "SliceScore", "foreground_fractions", "predict_case", "predict_volume", "resolve_case_modality"]

logger = logging.getLogger(__name__)


class SliceScore(NamedTuple):
    """Raw scores of one slice (spec section 5); ``slice_index`` is 0 for 2D sources.

    ``foreground`` is the slice's foreground fraction (1.0 for 2D sources) and ``scored`` whether
    it counts in the case score (foreground >= the run's ``min_foreground``).
    """

    slice_index: int
    image_score: float
    global_score: float
    map_max: float
    foreground: float = 1.0
    scored: bool = True


class CaseResult(NamedTuple):
    """Outputs of one source."""

    anomaly_map: MetaTensor  # (1, *source spatial shape) float32 with the source affine
    slices: list[SliceScore]  # in slice order
    modality: str = ""  # the preset the source was preprocessed with
    domain: str = ""
    modality_reason: str = ""  # why (auto) or "given"
    unscored: str = ""  # why the case has no score (no slice counts), else ""

    @property
    def best_slice(self) -> SliceScore | None:
        """The slice deciding the case: the highest score among scored slices (None if none is)."""
        pool = [s for s in self.slices if s.scored]
        return max(pool, key=lambda s: s.image_score) if pool else None

    @property
    def case_score(self) -> float | None:
        """Case score = the highest image score among the scored slices; None for an unscored case
        (a number taken from slices that do not count would look valid and is not)."""
        best = self.best_slice
        return None if best is None else best.image_score


def resolve_case_modality(image: torch.Tensor, modality: str) -> ModalityChoice:
    """The preset of one source: ``modality`` itself, or what ``auto`` picks for ``image``."""
    if modality == AUTO:
        return detect_modality(image)
    return ModalityChoice(modality, "given")


def foreground_fractions(volume: torch.Tensor, axis: int, modality: str) -> np.ndarray:
    """Foreground fraction of every slice of a (C, X, Y, Z) volume along spatial ``axis``."""
    data = torch.as_tensor(volume).detach()
    level = AIR_HU if get_modality(modality)["kind"] == "ct" else float(data.min())
    above = (data > level).any(0).float()  # (X, Y, Z)
    return above.mean(dim=[a for a in range(3) if a != axis]).numpy()


def _cut(image: MetaTensor, options: SliceOptions, modality: str) -> tuple[list[MetaTensor], dict[int, float]]:
    """The slices to predict and every kept slice's foreground fraction."""
    slicer = SliceVolume(axis=options.axis, start=options.start, stop=options.stop)
    if image.ndim != 4:
        return slicer(image), {0: 1.0}
    axis, indices = slicer.select(image)
    fractions = foreground_fractions(image, axis, modality)
    foreground = {k: float(fractions[k]) for k in indices}
    if options.skip_empty:
        indices = [k for k in indices if foreground[k] >= options.min_foreground]
    if not indices:
        source = image.meta.get("filename_or_obj", "image")
        msg = (f"{source}: no slice to predict (slice range {options.start}:{options.stop}, "
               f"{'min_foreground ' + str(options.min_foreground) if options.skip_empty else 'no slice in range'}); "
               "widen the range or lower --min-foreground")
        raise ValueError(msg)
    return slicer(image, indices=indices), foreground


def predict_case(
    predictor: Predictor,
    image: MetaTensor,
    description: str,
    options: SliceOptions | None = None,
    modality: str | None = None,
    domain: str | None = None,
) -> CaseResult:
    """Predict the slices of ``image`` and restack the maps on its grid.

    Args:
        predictor: the batched predictor.
        image: (C, H, W) 2D source or (1, X, Y, Z) volume, as returned by
            :func:`aaclip_med.data.loading.load_image` (meta ``affine`` in RAS mm).
        description: class description for the text anchors (e.g. "scan").
        options: how volumes are cut and which slices count (default :class:`SliceOptions`).
        modality: preset or "auto" (default: the predictor's).
        domain: "medical"/"industrial" (default: the predictor's, else the preset's).

    Returns:
        :class:`CaseResult`; voxels of slices not predicted are 0.
    """
    options = options or SliceOptions()
    choice = resolve_case_modality(image, modality or predictor.modality)
    domain = predictor.domain_for(choice.name, domain)
    slices, foreground = _cut(image, options, choice.name)
    out = predictor.predict_slices(slices, description, choice.name, domain)
    metas = [s.meta for s in slices]
    score_map = restack_slices(out.maps, metas)
    scores = []
    for meta, a, b, c in zip(metas, out.image_score, out.global_score, out.map_max, strict=True):
        fraction = foreground[int(meta["slice_index"])]
        scored = image.ndim != 4 or fraction >= options.min_foreground
        scores.append(SliceScore(int(meta["slice_index"]), float(a), float(b), float(c), fraction, scored))
    unscored = _unscored_reason(scores, options.min_foreground)
    if unscored:
        logger.warning("%s: %s; the case is unscored", image.meta.get("filename_or_obj", "image"), unscored)
    return CaseResult(score_map, scores, choice.name, domain, choice.reason, unscored)


def _unscored_reason(scores: list[SliceScore], min_foreground: float) -> str:
    if any(s.scored for s in scores):
        return ""
    largest = max(s.foreground for s in scores)
    return f"no slice reaches min_foreground {min_foreground:g} (largest foreground fraction {largest:.3g})"


def predict_volume(
    model: nn.Module | Predictor,
    volume: MetaTensor,
    description: str = "scan",
    modality: str = AUTO,
    slices: SliceOptions | None = None,
    **predictor_kwargs,
) -> MetaTensor:
    """Anomaly map of one volume or 2D image on its own grid (for pipelines and notebooks).

    Args:
        model: an AAClip or a ready :class:`Predictor` (then the predictor kwargs are ignored).
        volume: (1, X, Y, Z) or (C, H, W) MetaTensor with its affine.
        description: class description ("scan" for the BMAD-style medical sets).
        modality: modality preset, or "auto" (picked from the source, see :mod:`aaclip_med.data.modality`).
        slices: how a volume is cut and which slices count in the case score.
        predictor_kwargs: ``domain``, ``batch_size``, ``precision``, ``device`` of :class:`Predictor`.

    Returns:
        (1, *spatial) float32 MetaTensor with the source affine; ``meta["slice_scores"]`` holds the
        per-slice scores as dicts, ``meta["case_score"]`` the case score (None when no slice
        reaches ``min_foreground``; ``meta["unscored"]`` then says why) and ``meta["modality"]``
        the preset used.
    """
    predictor = model if isinstance(model, Predictor) else Predictor(model, modality=modality, **predictor_kwargs)
    result = predict_case(predictor, volume, description, slices, modality if modality != AUTO else None)
    out = result.anomaly_map
    out.meta["slice_scores"] = [s._asdict() for s in result.slices]
    out.meta["case_score"] = result.case_score
    out.meta["unscored"] = result.unscored
    out.meta["modality"] = result.modality
    return out
