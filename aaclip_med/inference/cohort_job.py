"""Cohort runs over files and folders: the :class:`~aaclip_med.inference.runner.Job` of one case per source.

For every case the outputs of ``case_outputs.py`` are staged, renamed into place, then a
done-marker ``.done/<case>.json`` (holding the case's score rows) is written last. The run loop
(:mod:`aaclip_med.inference.runner`) skips cases with a marker and isolates failures; at the end
the markers are merged into ``scores_slices.csv``, ``scores_cases.csv`` and ``scores.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from aaclip_med.data.loading import load_image
from aaclip_med.files import move_into, staging_folder, write_json_atomic
from aaclip_med.inference.calibration import ClassCalibration
from aaclip_med.inference.case_outputs import score_rows, write_case_outputs
from aaclip_med.inference.options import InferenceOptions
from aaclip_med.inference.predictor import Predictor
from aaclip_med.inference.sources import Case
from aaclip_med.inference.volume import CaseResult, predict_case
from aaclip_med.inference.writers import write_score_tables

__all__ = ["CohortJob", "load_case", "DONE_DIR", "ModalityLog"]

logger = logging.getLogger(__name__)

DONE_DIR = ".done"


def load_case(case: Case):
    """Load one case's source (module-level so DataLoader workers can pickle it).

    A DICOM series, even of one file, goes through the series reader, which keeps its geometry.
    """
    if case.kind == "dicom_series":
        return load_image(case.path, series_uid=case.series_uid)
    return load_image(case.path)


class ModalityLog:
    """Says which preset ``auto`` picked and why: a WARNING the first time a preset is picked in a
    run, INFO for later cases with the same preset (every case records it in its scores)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, where: str, name: str, reason: str) -> None:
        if reason == "given":
            return
        level = logging.INFO if name in self._seen else logging.WARNING
        self._seen.add(name)
        logger.log(level, "%s: --modality auto chose %s: %s", where, name, reason)


class CohortJob:
    """Cases -> maps, overlays, score rows (see the module docstring).

    Args:
        predictor: the batched predictor.
        cases: every case of the run.
        out_dir: the output folder.
        options: the run's settings (slicing, modality, threshold, DICOM outputs).
        description: text description of the cases' class.
        calibration_for: (modality, domain) -> the class calibration to apply, or None.
    """

    noun = "case"

    def __init__(self, predictor: Predictor, cases: list[Case], out_dir: Path, options: InferenceOptions,
                 description: str, calibration_for: Callable[[str, str], ClassCalibration | None]) -> None:
        self.predictor, self.cases, self.out_dir, self.options = predictor, cases, out_dir, options
        self.description, self.calibration_for = description, calibration_for
        self.load = load_case
        self.modality_log = ModalityLog()

    def units(self) -> list[Case]:
        return self.cases

    def unit_id(self, case: Case) -> str:
        return case.case_id

    def unit_path(self, case: Case) -> str:
        return str(case.path)

    def _marker(self, case: Case) -> Path:
        return self.out_dir / DONE_DIR / f"{case.case_id}.json"

    def is_done(self, case: Case) -> bool:
        return self._marker(case).is_file()

    def has_finished_work(self) -> bool:
        return any((self.out_dir / DONE_DIR).glob("*.json"))

    def clear(self) -> None:
        shutil.rmtree(self.out_dir / DONE_DIR, ignore_errors=True)

    def process(self, case: Case, image) -> None:
        result = predict_case(self.predictor, image, self.description, self.options.slices,
                              self.options.modality, self.options.domain)
        self.modality_log(f"case {case.case_id}", result.modality, result.modality_reason)
        calibration = self.calibration_for(result.modality, result.domain)
        rows = score_rows(case, result, calibration, self.options.resolved_class)
        self._write(case, image, result, rows, calibration)

    def _write(self, case: Case, image, result: CaseResult, rows: tuple[dict, list[dict]],
               calibration: ClassCalibration | None) -> None:
        # outputs go to a staging folder first: a case failing half-way leaves nothing under final names
        with staging_folder(self.out_dir, case.case_id) as staging:
            written = move_into(write_case_outputs(case, image, result, staging, self.options, rows, calibration),
                                self.out_dir)
        # the marker is written last: its presence means every output above is complete
        write_json_atomic(self._marker(case), {"case": rows[0], "slices": rows[1], "files": [p.name for p in written]})

    def finish(self) -> dict[str, str]:
        return {}  # every case is written when processed

    def merge(self, cases: list[Case]) -> list[Path]:
        case_rows, slice_rows = [], []
        for case in cases:
            if self.is_done(case):
                record = json.loads(self._marker(case).read_text(encoding="utf-8"))
                case_rows.append(record["case"])
                slice_rows += record["slices"]
        return list(write_score_tables(self.out_dir, slice_rows, case_rows).values())
