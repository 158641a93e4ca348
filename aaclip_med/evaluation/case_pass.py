"""The report's one pass over the cases: example tiles and viewer entries from one read of each case.

Classes come in the report's order and, within a class, case by case (not in score order), so a
case is read once however many of its slices are examples: its source is decoded once, its mask
volume comes from the run's volume cache (decoded by the metric pass), each of its maps is read
once, and its tiles and its viewer entry are cut from what was read. A case with neither a tile
nor a viewer entry is not read at all. The colour scale of a class comes from the metric pass
(``ClassResult.value_range``), not from another pass over its maps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aaclip_med.data.cache import VolumeCache
from aaclip_med.evaluation.cases import CaseSamples, SourceVolumes, Volume, group_cases, sample_label
from aaclip_med.evaluation.class_eval import ClassResult
from aaclip_med.evaluation.plots import Example
from aaclip_med.evaluation.predictions import load_map, load_mask
from aaclip_med.evaluation.viewer import ViewerWriter

__all__ = ["PassInputs", "example_groups", "case_pass"]

logger = logging.getLogger(__name__)

ExampleGroups = list[tuple[str, list[Example]]]


@dataclass(frozen=True)
class PassInputs:
    """Where the pass reads from.

    Attributes:
        predictions_dir: where ``maps/`` are.
        dataset_root: where masks are (sources are read by ``sources``).
        sources: reads the sources.
        cache: the run's volume cache (mask volumes).
    """

    predictions_dir: Path
    dataset_root: Path
    sources: SourceVolumes
    cache: VolumeCache


def example_groups(result: ClassResult, per_group: int) -> list[tuple[str, list[int]]]:
    """Positions (in ``result.samples``) of the examples to show, per group.

    Groups: highest-scoring normals (false alarms), lowest-scoring anomalies (misses), and
    highest-scoring anomalies (best detections).
    """
    scores = np.asarray(result.image_scores, dtype=np.float64)
    labels = np.asarray([s.label != 0 for s in result.samples])
    by_score = np.argsort(scores, kind="stable")
    normal_desc = [int(i) for i in by_score[::-1] if not labels[i]]
    anomalous_asc = [int(i) for i in by_score if labels[i]]
    groups = [
        ("highest-scoring normals (false alarms)", normal_desc[:per_group]),
        ("lowest-scoring anomalies (misses)", anomalous_asc[:per_group]),
        ("best detections", anomalous_asc[::-1][:per_group]),
    ]
    return [(title, idx) for title, idx in groups if idx]


def _source(result: ClassResult, case: CaseSamples, sources: SourceVolumes) -> tuple[Volume | None, np.ndarray | None]:
    """(volume, None) for a volume case, (None, display image) for an image; None where unreadable (logged)."""
    if not case.volume:
        return None, sources.image(result.samples[case.positions[0]])
    try:
        return sources.volume(case.image_path), None
    except (ValueError, OSError) as err:  # a DataError names the file; the tiles are still worth showing
        logger.warning("cannot read %s for the example tiles and the viewer (%s)", case.image_path, err)
        return None, None


def _read(result: ClassResult, positions: list[int], inputs: PassInputs) -> tuple[dict, dict]:
    """Maps (as evaluated, at the source's size whatever the protocol scored) and masks, by position."""
    maps, masks = {}, {}
    for position in positions:
        sample = result.samples[position]
        raw = load_map(inputs.predictions_dir, sample)
        maps[position] = result.normaliser.map(raw)
        masks[position] = load_mask(inputs.dataset_root, sample, raw.shape, cache=inputs.cache)
    return maps, masks


def _tile(result: ClassResult, position: int, volume: Volume | None, image: np.ndarray | None,
          score_map: np.ndarray, mask: np.ndarray) -> Example:
    sample = result.samples[position]
    slices = None
    if sample.slice_index is not None:
        image = None if volume is None else volume.display_slice(sample.slice_index)
        slices = None if volume is None else volume.array.shape[-1]
    truth = "anomalous" if sample.label else "normal"
    caption = f"{sample_label(sample, slices)}\nscore {result.image_scores[position]:.3g} · {truth}"
    return Example(image, score_map, mask, caption)


def _visit(result: ClassResult, case: CaseSamples, tiles: list[int], inputs: PassInputs,
           viewer: ViewerWriter | None) -> dict[int, Example]:
    """Read one case once; hand it to the viewer; return its tiles by position."""
    volume, image = _source(result, case, inputs.sources)
    whole = viewer is not None and case.volume and volume is not None  # the viewer shows every listed slice
    positions = list(case.positions) if whole else (tiles or list(case.positions[:1]))
    maps, masks = _read(result, positions, inputs)
    if whole:
        viewer.add_volume(result, case, volume, maps, masks)
    elif viewer is not None and not case.volume:
        viewer.add_image(result, case, image, maps[positions[0]], masks[positions[0]])
    return {p: _tile(result, p, volume, image, maps[p], masks[p]) for p in tiles}


def case_pass(results: list[ClassResult], inputs: PassInputs, per_group: int,
              viewer: ViewerWriter | None = None) -> dict[str, ExampleGroups]:
    """Example tiles of every class; viewer entries for every volume case and every example image.

    Args:
        results: the evaluated classes.
        inputs: see :class:`PassInputs`.
        per_group: tiles per example group and class.
        viewer: receives the cases it shows (None: no viewer).

    Returns:
        Class name -> its example groups (title, tiles), in :func:`example_groups` order.
    """
    examples = {}
    for result in results:
        groups = example_groups(result, per_group)
        wanted = {p for _, positions in groups for p in positions}
        tiles: dict[int, Example] = {}
        for case in group_cases(result):
            mine = [p for p in case.positions if p in wanted]
            if mine or (viewer is not None and case.volume):
                tiles.update(_visit(result, case, mine, inputs, viewer))
        examples[result.class_name] = [(title, [tiles[p] for p in positions]) for title, positions in groups]
    return examples
