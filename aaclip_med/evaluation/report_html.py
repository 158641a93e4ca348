"""report.html and its viewer: one folder that opens from disk (no external URL, no network).

``report.html`` itself is one file (inline CSS and script, figures as base64 PNG). Beside it,
``viewer.html`` and ``viewer/`` (see :mod:`aaclip_med.evaluation.viewer`) show every volume case in
NiiVue and the example images with a before/after slider; the report links to them.

Reading order, as a clinician-researcher reads it: provenance (what model, which weights, which
settings), metrics per class, ROC/PR curves of all classes, the sortable per-case score table, then
each class with its curves and example tiles.
"""

from __future__ import annotations

import base64
import html
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from aaclip_med.data.cache import VolumeCache
from aaclip_med.evaluation.case_pass import PassInputs, case_pass, example_groups
from aaclip_med.evaluation.cases import SourceVolumes, case_rows
from aaclip_med.evaluation.class_eval import METRIC_NAMES, ClassResult
from aaclip_med.evaluation.plots import ClassCurves, Example, bars_png, curves_png, overlays_png, overview_png
from aaclip_med.evaluation.predictions import read_jsonl
from aaclip_med.evaluation.provenance import provenance_rows
from aaclip_med.evaluation.report_files import comparison_lines, percent
from aaclip_med.evaluation.viewer import VIEWER_PAGE, ViewerWriter
from aaclip_med.files import write_bytes_atomic, write_text_atomic

__all__ = ["render_html", "report_figures", "write_report_pages", "Page"]

logger = logging.getLogger(__name__)

_STYLE = """
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}tr.mean{font-weight:bold}
table.kv td{text-align:left;vertical-align:top}table.kv td:first-child{font-weight:bold;white-space:nowrap}
table.kv td:last-child{font-family:monospace;font-size:0.9em;word-break:break-all}
table.cases td:nth-child(-n+5),table.cases th:nth-child(-n+5){text-align:left}
table.sortable th{cursor:pointer;user-select:none}table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
tr.anomalous td:nth-child(5){color:#b03a2e;font-weight:bold}
.warning{background:#c0392b;color:#fff;padding:1em;font-size:1.3em;font-weight:bold;border-radius:4px}
.note{color:#555}img{max-width:100%}
"""

# Click a header to sort by it (numbers numerically, text alphabetically); click again to reverse.
_SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var key = function (row) { var cell = row.cells[column]; return cell.getAttribute("data-sort") || cell.textContent; };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


@dataclass
class Page:
    """Everything the page shows besides the report dictionary and the class results.

    Attributes:
        examples: per class, the example groups (title, tiles).
        cases: the per-case rows (:func:`aaclip_med.evaluation.cases.case_rows`).
        viewer_keys: (class, image_path) -> case key in ``viewer.html`` (empty: no viewer page).
        example_paths: per class, the sources of its example tiles (distinct, in tile order).
    """

    examples: dict[str, list[tuple[str, list[Example]]]] = field(default_factory=dict)
    cases: list[dict] = field(default_factory=list)
    viewer_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    example_paths: dict[str, list[str]] = field(default_factory=dict)


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


def _provenance(report: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in provenance_rows(report))
    return f'<section id="provenance"><h2>Provenance</h2><table class="kv">{rows}</table></section>'


def _viewer_link(page: Page, class_name: str, image_path: str, text: str) -> str:
    key = page.viewer_keys.get((class_name, image_path))
    return f'<a href="{VIEWER_PAGE}#case={html.escape(key)}">{html.escape(text)}</a>' if key else ""


def _cell(text: str, sort: str | None = None, escape: bool = True) -> str:
    content = html.escape(text) if escape else text
    return f'<td data-sort="{html.escape(sort)}">{content}</td>' if sort is not None else f"<td>{content}</td>"


def _case_table(page: Page) -> str:
    head = ("class", "case", "kind", "modality preset", "ground truth", "case score", "top slice", "viewer")
    body = []
    for row in page.cases:
        volume = row["kind"] == "volume"
        truth = row["label"] + (f" ({row['n_anomalous']} of {row['n_samples']} slices)" if volume and row["n_anomalous"] else "")
        top = row["top_slice"]
        cells = [
            _cell(row["class_name"]),
            _cell(row["image_path"]),
            _cell(f"volume, {row['n_samples']} slices" if volume else "image"),
            _cell(row["modality"]),
            _cell(truth),
            _cell(f"{row['score']:.4g}", sort=f"{row['score']:.9g}"),
            _cell("" if top is None else str(top), sort="-1" if top is None else str(top)),
            _cell(_viewer_link(page, row["class_name"], row["image_path"], "open"), escape=False),
        ]
        css = ' class="anomalous"' if row["label"] == "anomalous" else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    note = ("Case score: the highest evaluated score of the case's slices (or of the image), as the metrics used "
            "it. Click a column header to sort.")
    return (f'<section id="cases"><h2>Cases</h2><p class="note">{note}</p>'
            f'<table class="cases sortable"><thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody></table></section>')


def _viewer_note(page: Page) -> str:
    if not page.viewer_keys:
        return ""
    return (f'<p>Interactive viewer: <a href="{VIEWER_PAGE}">{VIEWER_PAGE}</a>: every volume case in NiiVue (axial, '
            "coronal, sagittal; map opacity and threshold; value under the crosshair) and the example images "
            "with a before/after slider.</p>")


_RANDOM_STAMP = "RANDOM WEIGHTS: these numbers do not measure the method"


def _figure_stem(number: int, class_name: str, what: str) -> str:
    return f"class{number:02d}_" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", class_name).strip("._")[:40] or "class") + f"_{what}"


def report_figures(report: dict, results: list[ClassResult], page: Page) -> dict[str, str]:
    """Every figure of the page as base64 PNG, by file stem (``metrics_per_class``, ``roc_pr_curves``,
    ``classNN_<name>_curves``, ``classNN_<name>_examples``); drawn once, for the page and for
    ``write_report_pages(figures_dir=...)``. A random-weights run stamps each figure with a warning."""
    stamp = _RANDOM_STAMP if report.get("random_weights") else None
    figures = {"metrics_per_class": bars_png(report["classes"], METRIC_NAMES, stamp)}
    curves = [ClassCurves(r.class_name, r.pixel, r.image) for r in results]
    if any(c.pixel is not None or c.image is not None for c in curves):
        figures["roc_pr_curves"] = overview_png(curves, stamp)
    for number, result in enumerate(results, start=1):
        if result.pixel is not None or result.image is not None:
            figures[_figure_stem(number, result.class_name, "curves")] = curves_png(
                result.class_name, result.pixel, result.image, stamp)
        if page.examples.get(result.class_name):
            figures[_figure_stem(number, result.class_name, "examples")] = overlays_png(page.examples[result.class_name], stamp)
    return figures


def _class_section(number: int, result: ClassResult, row: dict, page: Page, figures: dict[str, str]) -> list[str]:
    parts = [f'<h2 id="class-{html.escape(result.class_name)}">Class {html.escape(result.class_name)}</h2>']
    for level, why in row["undefined"].items():
        parts.append(f'<p class="note">{html.escape(level)} metrics {html.escape(why)}</p>')
    curves = figures.get(_figure_stem(number, result.class_name, "curves"))
    if curves:
        parts.append(_img(curves, f"{result.class_name} curves"))
    examples = figures.get(_figure_stem(number, result.class_name, "examples"))
    if examples:
        parts.append(_img(examples, f"{result.class_name} examples"))
        links = [_viewer_link(page, result.class_name, path, path) for path in page.example_paths.get(result.class_name, [])]
        links = [link for link in links if link]
        if links:
            parts.append('<p class="note">In the viewer: ' + " · ".join(links) + "</p>")
    return parts


def render_html(report: dict, results: list[ClassResult], page: Page | None = None,
                figures: dict[str, str] | None = None) -> str:
    """The whole report page as one string (``figures``: :func:`report_figures`, drawn when not given)."""
    page = page or Page()
    figures = figures if figures is not None else report_figures(report, results, page)
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>aaclip-med evaluation</title><link rel='icon' href='data:,'>"]
    parts.append(
        f"<style>{_STYLE}</style></head><body><h1>Evaluation report ({html.escape(report['protocol'])} protocol)</h1>"
    )
    if report.get("random_weights"):
        parts.append(
            '<div class="warning">WARNING: run.json says the backbone weights were random. '
            "These numbers do not measure the method.</div>"
        )
    parts.append(_provenance(report))
    parts.append("<h2>Metrics</h2>")
    parts.append('<p class="note">Percent; per class and averaged over the classes where defined.</p>')
    parts += [_table(report), _markdown_table_to_html(comparison_lines(report))]
    parts.append(_img(figures["metrics_per_class"], "metrics per class"))
    if "roc_pr_curves" in figures:
        parts.append("<h2>ROC and precision-recall curves</h2>")
        parts.append(_img(figures["roc_pr_curves"], "ROC and precision-recall curves of every class"))
    parts.append(_viewer_note(page))
    if page.cases:
        parts.append(_case_table(page))
    for number, (result, row) in enumerate(zip(results, report["classes"], strict=True), start=1):
        parts += _class_section(number, result, row, page, figures)
    parts.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _modalities(manifest: Path | None) -> dict[int, str]:
    """Manifest line index -> modality preset named on that line (lines without one are left out)."""
    if manifest is None or not Path(manifest).is_file():
        return {}
    return {n: str(e["modality"]) for n, e in enumerate(read_jsonl(Path(manifest))) if e.get("modality")}


def write_report_pages(out_dir: Path, report: dict, results: list[ClassResult], predictions_dir: Path,
                       dataset_root: Path, manifest: Path | None = None, per_group: int = 3, *,
                       cache: VolumeCache, viewer: bool = True, figures_dir: Path | None = None) -> list[Path]:
    """Write ``report.html`` and, when there are volume cases or example images, the viewer beside it.

    Args:
        out_dir: the report folder.
        report: the report dictionary.
        results: the evaluated classes, in the report's order.
        predictions_dir, dataset_root: where maps, sources and masks are.
        manifest: the manifest (modality preset per line); None: the run's preset for all.
        per_group: example tiles per group and class.
        cache: the run's volume cache (mask volumes, kept from the metric pass).
        viewer: write the viewer (off: report.html only).
        figures_dir: also save the page's figures there as PNG files (:func:`report_figures`).

    Returns:
        The written pages (report.html, and viewer.html when written) and figure files.
    """
    out_dir = Path(out_dir)
    page = Page(cases=case_rows(results, _modalities(manifest), (report.get("run") or {}).get("modality")))
    writer = ViewerWriter(out_dir, page.cases) if viewer else None
    inputs = PassInputs(Path(predictions_dir), Path(dataset_root), SourceVolumes(dataset_root), cache)
    page.examples = case_pass(results, inputs, per_group, writer)
    for r in results:
        paths = [r.samples[p].image_path for _, positions in example_groups(r, per_group) for p in positions]
        page.example_paths[r.class_name] = list(dict.fromkeys(paths))
    page.viewer_keys = writer.finish() if writer is not None else {}
    figures = report_figures(report, results, page)
    written = [write_text_atomic(out_dir / "report.html", render_html(report, results, page, figures))]
    if page.viewer_keys:
        written.append(out_dir / VIEWER_PAGE)
    if figures_dir is not None:
        written += [write_bytes_atomic(Path(figures_dir) / f"{stem}.png", base64.b64decode(data)) for stem, data in figures.items()]
    return written
