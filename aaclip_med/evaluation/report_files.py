"""Report files that are plain text: report.json, metrics.csv, report.md; atomic writes.

Every file is written to a temporary name in the output directory and moved into place with
``os.replace``, so a reader never sees half a report and an interrupted run leaves the old one.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from aaclip_med.evaluation.class_eval import METRIC_NAMES
from aaclip_med.evaluation.provenance import provenance_rows
from aaclip_med.files import write_text_atomic

__all__ = ["write_csv", "write_markdown", "percent"]

_LABELS = {
    "pixel_auroc": "Pixel AUROC",
    "pixel_ap": "Pixel AP",
    "pixel_aupro": "Pixel AUPRO@0.3",
    "pixel_f1_max": "Pixel F1-max",
    "image_auroc": "Image AUROC",
    "image_ap": "Image AP",
    "image_f1_max": "Image F1-max",
}


def percent(value: float | None, digits: int = 1) -> str:
    """Format a fraction as percent; 'n/a' when not defined."""
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def write_csv(path: Path, report: dict) -> None:
    """One row per class plus a ``mean`` row; metrics as fractions, empty when not defined."""
    buffer = io.StringIO()
    columns = ["class_name", "n_images", "n_anomalous", *METRIC_NAMES]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    mean_row = {"class_name": "mean", **report["mean"]}
    mean_row["n_images"] = sum(row["n_images"] for row in report["classes"])
    mean_row["n_anomalous"] = sum(row["n_anomalous"] for row in report["classes"])
    for row in [*report["classes"], mean_row]:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    write_text_atomic(path, buffer.getvalue())


def markdown_table(report: dict) -> list[str]:
    """Per-class table (percent) with the mean row last."""
    head = ["Class", "Images", "Anomalous", *(_LABELS[m] for m in METRIC_NAMES)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in [
        *report["classes"],
        {"class_name": "**mean**", "n_images": "", "n_anomalous": "", **report["mean"]},
    ]:
        cells = [str(row["class_name"]), str(row["n_images"]), str(row["n_anomalous"])]
        cells += [percent(row.get(m)) for m in METRIC_NAMES]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def comparison_lines(report: dict) -> list[str]:
    """Ours next to the published numbers, when the dataset has some."""
    published = report.get("published")
    if not published:
        return []
    lines = [
        f"## Comparison with the paper ({published['name']})",
        "",
        "| Metric | Ours | Paper |",
        "|---|---|---|",
    ]
    for metric in ("pixel_auroc", "image_auroc"):
        paper = published.get(metric)
        ours = report["mean"].get(metric)
        lines.append(
            f"| {_LABELS[metric]} | {percent(ours)} | {'n/a' if paper is None else f'{paper:.1f}'} |"
        )
    lines += ["", f"Source: {published['source']}."]
    if report["protocol"] != "paper":
        lines.append(
            "Ours were computed with the deployment protocol; the paper used per-class test normalisation."
        )
    return lines


def write_markdown(path: Path, report: dict) -> None:
    """A short human summary: warnings, the table, the comparison and the undefined metrics."""
    lines = [f"# Evaluation report ({report['protocol']} protocol)", ""]
    if report.get("random_weights"):
        lines += ["> **WARNING: the backbone weights were random; these numbers mean nothing.**", ""]
    if report.get("dataset"):
        lines += [f"Dataset: {report['dataset']}", ""]
    lines += ["## Provenance", ""] + [f"- {label}: {value}" for label, value in provenance_rows(report)] + [""]
    lines += ["Metrics in percent, per class and averaged over classes.", "", *markdown_table(report), ""]
    lines += comparison_lines(report)
    undefined = [
        (row["class_name"], level, why)
        for row in report["classes"]
        for level, why in row["undefined"].items()
    ]
    if undefined:
        lines += ["", "## Not defined", ""] + [
            f"- {name}: {level} metrics {why}" for name, level, why in undefined
        ]
    write_text_atomic(path, "\n".join(lines) + "\n")
