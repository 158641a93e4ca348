"""report.html: one self-contained file (inline CSS, figures as base64 PNG, no external URLs)."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import numpy as np

from aaclip_med.evaluation.class_eval import METRIC_NAMES, ClassResult, scored_map_and_mask
from aaclip_med.evaluation.plots import Example, bars_png, curves_png, overlays_png
from aaclip_med.evaluation.predictions import load_overlay_image
from aaclip_med.evaluation.report_files import comparison_lines, percent

__all__ = ["render_html", "example_groups"]

logger = logging.getLogger(__name__)

_STYLE = """
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}tr.mean{font-weight:bold}
.warning{background:#c0392b;color:#fff;padding:1em;font-size:1.3em;font-weight:bold;border-radius:4px}
.note{color:#555}img{max-width:100%}
"""


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
        ("highest-scoring normals", normal_desc[:per_group]),
        ("lowest-scoring anomalies", anomalous_asc[:per_group]),
        ("best detections", anomalous_asc[::-1][:per_group]),
    ]
    return [(title, idx) for title, idx in groups if idx]


def _examples(result: ClassResult, predictions_dir: Path, dataset_root: Path, per_group: int) -> list:
    groups = []
    for title, positions in example_groups(result, per_group):
        tiles = []
        for pos in positions:
            sample = result.samples[pos]
            raw, mask = scored_map_and_mask(sample, predictions_dir, dataset_root, result.normaliser.protocol)
            caption = f"{Path(sample.image_path).name}\nscore {result.image_scores[pos]:.3g}"
            tiles.append(Example(load_overlay_image(dataset_root, sample), result.normaliser.map(raw), mask, caption))
        groups.append((title, tiles))
    return groups


def _table(report: dict) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ("class", "images", "anomalous", *METRIC_NAMES))
    rows = []
    for row, css in [
        *((r, "") for r in report["classes"]),
        ({"class_name": "mean", **report["mean"]}, "mean"),
    ]:
        cells = [
            html.escape(str(row["class_name"])),
            str(row.get("n_images", "")),
            str(row.get("n_anomalous", "")),
        ]
        cells += [percent(row.get(m)) for m in METRIC_NAMES]
        rows.append(f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _markdown_table_to_html(lines: list[str]) -> str:
    """The comparison block (small Markdown table) as HTML."""
    if not lines:
        return ""
    out = [f"<h2>{html.escape(lines[0].lstrip('# '))}</h2><table>"]
    for line in lines[2:]:
        if line.startswith("|") and not line.startswith("|---"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        elif line and not line.startswith("|"):
            out.append(f'</table><p class="note">{html.escape(line)}</p><table>')
    out.append("</table>")
    return "".join(out)


def _img(data: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def render_html(
    report: dict, results: list[ClassResult], predictions_dir: Path, dataset_root: Path, per_group: int = 3
) -> str:
    """The whole report page as one string."""
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>aaclip-med evaluation</title>"]
    parts.append(
        f"<style>{_STYLE}</style></head><body><h1>Evaluation report ({html.escape(report['protocol'])} protocol)</h1>"
    )
    if report.get("random_weights"):
        parts.append(
            '<div class="warning">WARNING: run.json says the backbone weights were random. '
            "These numbers do not measure the method.</div>"
        )
    if report.get("dataset"):
        parts.append(f"<p>Dataset: {html.escape(str(report['dataset']))}</p>")
    parts.append('<p class="note">Percent; per class and averaged over the classes where defined.</p>')
    parts += [_table(report), _markdown_table_to_html(comparison_lines(report))]
    parts.append(_img(bars_png(report["classes"], METRIC_NAMES), "metrics per class"))
    for result, row in zip(results, report["classes"], strict=True):
        parts.append(f"<h2>Class {html.escape(result.class_name)}</h2>")
        for level, why in row["undefined"].items():
            parts.append(f'<p class="note">{html.escape(level)} metrics {html.escape(why)}</p>')
        if result.pixel is not None or result.image is not None:
            parts.append(
                _img(curves_png(result.class_name, result.pixel, result.image), f"{result.class_name} curves")
            )
        groups = _examples(result, predictions_dir, dataset_root, per_group)
        if groups:
            parts.append(_img(overlays_png(groups), f"{result.class_name} examples"))
    parts.append("</body></html>")
    return "\n".join(parts)
