"""Report figures rendered to base64 PNG strings (matplotlib, Agg canvas, no pyplot state)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np

from aaclip_med.evaluation.binary_metrics import BinaryMetrics

__all__ = ["Example", "curves_png", "bars_png", "overlays_png"]


@dataclass(frozen=True)
class Example:
    """One overlay tile: source image (or None), map as evaluated, binary mask, caption."""

    image: np.ndarray | None
    score_map: np.ndarray
    mask: np.ndarray
    caption: str


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(fig)
    return fig


def _to_base64(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def curves_png(class_name: str, pixel: BinaryMetrics | None, image: BinaryMetrics | None) -> str:
    """ROC and precision-recall curves of one class, pixel and image level."""
    fig = _figure(8.0, 3.6)
    roc, pr = fig.subplots(1, 2)
    for level, metrics, style in (("pixel", pixel, "-"), ("image", image, "--")):
        if metrics is None:
            continue
        c = metrics.curves
        roc.plot(c.fpr, c.tpr, style, label=f"{level} AUROC {100 * metrics.auroc:.1f}")
        pr.plot(c.recall, c.precision, style, label=f"{level} AP {100 * metrics.ap:.1f}")
    roc.plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
    roc.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{class_name}: ROC")
    pr.set(xlabel="recall", ylabel="precision", title=f"{class_name}: precision-recall", ylim=(0, 1.02))
    for ax in (roc, pr):
        ax.legend(loc="lower right" if ax is roc else "lower left", fontsize=8)
        ax.grid(alpha=0.3)
    return _to_base64(fig)


def bars_png(rows: list[dict], metrics: tuple[str, ...]) -> str:
    """Grouped bar chart: one group per class, one bar per metric (percent; missing = no bar)."""
    fig = _figure(max(6.0, 0.9 * len(rows) + 2.0), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    x = np.arange(len(rows))
    for i, metric in enumerate(metrics):
        values = [np.nan if row.get(metric) is None else 100 * row[metric] for row in rows]
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric)
    ax.set_xticks(x, [row["class_name"] for row in rows], rotation=30, ha="right")
    ax.set(ylabel="percent", ylim=(0, 100), title="Metrics per class")
    ax.legend(fontsize=7, ncols=4, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return _to_base64(fig)


def overlays_png(groups: list[tuple[str, list[Example]]]) -> str:
    """A grid: one row per group (e.g. highest-scoring normals), anomaly map over the image,
    ground-truth outline in green."""
    columns = max(len(examples) for _, examples in groups)
    fig = _figure(2.2 * columns, 2.4 * len(groups))
    axes = np.atleast_2d(fig.subplots(len(groups), columns, squeeze=False))
    values = [e.score_map for _, examples in groups for e in examples]
    low = min(float(v.min()) for v in values)
    high = max(float(v.max()) for v in values)
    for row, (title, examples) in enumerate(groups):
        for col in range(columns):
            ax = axes[row, col]
            ax.set_axis_off()
            if col >= len(examples):
                continue
            example = examples[col]
            # One extent for image and map, in case the source image has another size.
            extent = (0, example.score_map.shape[1], example.score_map.shape[0], 0)
            if example.image is not None:
                ax.imshow(example.image, cmap="gray", extent=extent)
            alpha = 0.5 if example.image is not None else 1.0
            ax.imshow(example.score_map, cmap="jet", alpha=alpha, vmin=low, vmax=high, extent=extent)
            if example.mask.any():
                ax.contour(example.mask.astype(np.uint8), levels=[0.5], colors="lime", linewidths=0.8)
            ax.set_title(f"{title}\n{example.caption}" if col == 0 else example.caption, fontsize=7)
    return _to_base64(fig)
