"""Score tables: per slice/image and per case, as CSV and JSON.

Case score = max of the case's slice (or image) scores: a lesion on one slice makes the case
anomalous, and for a 2D source the case score is simply the image score.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from aaclip_med.files import write_json_atomic, write_text_atomic

__all__ = ["write_csv", "write_score_tables", "SCORE_FILES"]

SCORE_FILES = {"slices_csv": "scores_slices.csv", "cases_csv": "scores_cases.csv", "json": "scores.json"}


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping]) -> Path:
    """Write dict rows as CSV; columns are the keys in first-seen order (missing cells empty)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def write_score_tables(out_dir: str | os.PathLike, slice_rows: Sequence[Mapping], case_rows: Sequence[Mapping]) -> dict[str, Path]:
    """Write ``scores_slices.csv``, ``scores_cases.csv`` and ``scores.json`` ({cases, slices}) into ``out_dir``."""
    out_dir = Path(out_dir)
    return {
        "slices_csv": write_csv(out_dir / SCORE_FILES["slices_csv"], slice_rows),
        "cases_csv": write_csv(out_dir / SCORE_FILES["cases_csv"], case_rows),
        "json": write_json_atomic(out_dir / SCORE_FILES["json"], {"cases": list(case_rows), "slices": list(slice_rows)}),
    }
