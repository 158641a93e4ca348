"""Where reference slices come from: files and folders (cases), or the normal lines of a manifest.

Both yield :class:`~aaclip_med.adaptation.builder.ReferenceSlices` lazily, one source at a time, so
a build never holds more than one loaded volume. Volume slices with less foreground than the run's
``min_foreground`` are left out (a slice of air says nothing about normal tissue); a source left
with none is skipped with a warning naming it, and a set left with none is an error. A manifest with
an anomalous line is refused: a memory of normal patches must hold normal patches only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from aaclip_med.adaptation.builder import ReferenceSlices
from aaclip_med.data.slicing import SliceVolume
from aaclip_med.errors import ParameterError
from aaclip_med.inference.cohort_job import load_case
from aaclip_med.inference.options import SliceOptions
from aaclip_med.inference.predictions_dir import _GroupLoader, group_records
from aaclip_med.inference.sources import Case
from aaclip_med.inference.volume import foreground_fractions, resolve_case_modality
from aaclip_med.keys import Keys

__all__ = ["case_references", "manifest_references", "normal_records"]

logger = logging.getLogger(__name__)


def _foreground_slices(image, options: SliceOptions, modality: str, where: str) -> list:
    slicer = SliceVolume(axis=options.axis, start=options.start, stop=options.stop)
    if image.ndim != 4:
        return slicer(image)
    axis, indices = slicer.select(image)
    fractions = foreground_fractions(image, axis, modality)
    kept = [k for k in indices if fractions[k] >= options.min_foreground]
    if len(kept) < len(indices):
        logger.info("references: %s: %d of %d slice(s) under %.0f%% foreground left out", where,
                    len(indices) - len(kept), len(indices), 100 * options.min_foreground)
    return slicer(image, indices=kept) if kept else []


def case_references(cases: Sequence[Case], options: SliceOptions, modality: str) -> Iterator[ReferenceSlices]:
    """Reference slices of each case (volumes: the foreground slices of the slice range).

    Raises:
        ValueError: no case has a slice with enough foreground (at the end of the iteration).
    """
    empty = []
    for case in cases:
        image = load_case(case)
        choice = resolve_case_modality(image, modality)
        slices = _foreground_slices(image, options, choice.name, str(case.path))
        if not slices:
            logger.warning("references: %s has no slice with at least %.0f%% foreground; skipped", case.path,
                           100 * options.min_foreground)
            empty.append(str(case.path))
            continue
        yield ReferenceSlices(str(case.path), slices, choice.name)
    if empty and len(empty) == len(cases):
        raise ParameterError("min_foreground", options.min_foreground, "no reference slice has that much "
                             f"foreground (sources: {', '.join(empty[:3])}{'...' if len(empty) > 3 else ''}); lower "
                             "it or give references with tissue in them")


def normal_records(records: Sequence[dict], manifest: str | Path) -> list[dict]:
    """The manifest's records, refused when any is anomalous (label 1)."""
    anomalous = [n for n, r in enumerate(records, 1) if float(r[Keys.LABEL]) != 0.0]
    if anomalous:
        first = records[anomalous[0] - 1][Keys.IMAGE_PATH]
        msg = (f"{manifest}: {len(anomalous)} anomalous record(s) (label 1) among the references, first at record "
               f"{anomalous[0]} ({first}); a reference memory takes normal records (label 0) only")
        raise ValueError(msg)
    return list(records)


def manifest_references(records: Sequence[dict], root: Path, modality: str) -> Iterator[ReferenceSlices]:
    """Reference slices of manifest records (one class), source by source; a line's own preset wins."""
    loader = _GroupLoader(Path(root), list(records), modality)
    for group in group_records(list(records)):
        slices, names, _reason = loader(group)
        for name in dict.fromkeys(names):
            yield ReferenceSlices(str(Path(root) / group[0]), [s for s, n in zip(slices, names, strict=True) if n == name],
                                  name)
