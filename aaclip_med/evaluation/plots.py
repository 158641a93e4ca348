"""Report figures (matplotlib, Agg canvas, no pyplot state): built as Figures, embedded as base64 PNG.

Each ``*_figure`` function returns the Figure (the tests measure its layout: no title over another
tile, no legend over the data); the ``*_png`` twins render it for the HTML page.
"""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import dataclass

import numpy as np

from aaclip_med.evaluation.binary_metrics import BinaryMetrics

__all__ = [
    "Example", "ClassCurves", "curves_figure", "curves_png", "overview_figure", "overview_png",
    "bars_figure", "bars_png", "overlays_figure", "overlays_png", "blend_rgb",
]

_DPI = 90
_MAP_ALPHA = 0.45  # translucent map over the anatomy, as in the demo's montage
_TRUTH_COLOUR = "lime"
_LABEL_WIDTH = 34  # characters per line of a tile title (7 pt on a 2.6 inch tile)


@dataclass(frozen=True)
class Example:
    """One overlay tile.

    Attributes:
        image: source for display, (H, W) in [0, 1] or (H, W, 3) uint8; None when unreadable.
        score_map: (H, W) map as evaluated.
        mask: (H, W) bool ground truth.
        caption: what the tile shows (class · folder/file · slice) and its score.
    """

    image: np.ndarray | None
    score_map: np.ndarray
    mask: np.ndarray
    caption: str


@dataclass(frozen=True)
class ClassCurves:
    """The curves of one class for the overview figure (None where a level is not defined)."""

    class_name: str
    pixel: BinaryMetrics | None
    image: BinaryMetrics | None


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def to_base64(fig, stamp: str | None = None) -> str:
    """The figure as a base64 PNG (no timestamp in the file, so equal figures give equal bytes).

    ``stamp``: a warning written in red above the figure (e.g. random weights), so a PNG shared on
    its own still carries it.
    """
    if stamp:
        fig.text(0.5, 1.0, stamp, ha="center", va="bottom", color="darkred", fontsize=10, fontweight="bold")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def curves_figure(class_name: str, pixel: BinaryMetrics | None, image: BinaryMetrics | None):
    """ROC and precision-recall curves of one class, pixel and image level."""
    fig = _figure(8.0, 3.6, layout=None)  # two plain panels: savefig's tight box is enough (and 3x faster)
    roc, pr = fig.subplots(1, 2)
    fig.subplots_adjust(wspace=0.3)
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
    return fig


def curves_png(class_name: str, pixel: BinaryMetrics | None, image: BinaryMetrics | None, stamp: str | None = None) -> str:
    return to_base64(curves_figure(class_name, pixel, image), stamp)


def overview_figure(classes: list[ClassCurves]):
    """ROC and PR curves of every class in one figure: image level (top), pixel level (bottom).

    One colour per class; the legend (class names) sits outside the panels, the values are in the
    report's table.
    """
    from matplotlib import colormaps

    fig = _figure(9.5, 7.0)
    axes = fig.subplots(2, 2)
    colours = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    for n, entry in enumerate(classes):
        colour = colours(n % colours.N)
        for row, metrics in enumerate((entry.image, entry.pixel)):
            if metrics is None:
                continue
            c = metrics.curves
            axes[row, 0].plot(c.fpr, c.tpr, color=colour, label=entry.class_name)
            axes[row, 1].plot(c.recall, c.precision, color=colour, label=entry.class_name)
    for row, level in enumerate(("image", "pixel")):
        axes[row, 0].plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
        axes[row, 0].set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"{level} level: ROC")
        axes[row, 1].set(xlabel="recall", ylabel="precision", title=f"{level} level: precision-recall",
                         ylim=(0, 1.02))
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.set_xlim(0, 1)
    handles, labels = _unique_legend(axes)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="class")
    return fig


def _unique_legend(axes) -> tuple[list, list]:
    seen: dict[str, object] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    return list(seen.values()), list(seen)


def overview_png(classes: list[ClassCurves], stamp: str | None = None) -> str:
    return to_base64(overview_figure(classes), stamp)


def bars_figure(rows: list[dict], metrics: tuple[str, ...]):
    """Grouped bar chart: one group per class, one bar per metric (percent; missing = no bar).

    The legend is outside the axes, so no bar is ever hidden behind it.
    """
    fig = _figure(max(6.0, 0.9 * len(rows) + 3.5), 3.8)
    ax = fig.subplots()
    width = 0.8 / len(metrics)
    x = np.arange(len(rows))
    for i, metric in enumerate(metrics):
        values = [np.nan if row.get(metric) is None else 100 * row[metric] for row in rows]
        ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric)
    ax.set_xticks(x, [row["class_name"] for row in rows], rotation=30, ha="right")
    ax.set(ylabel="percent", ylim=(0, 100), title="Metrics per class")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)
    return fig


def bars_png(rows: list[dict], metrics: tuple[str, ...], stamp: str | None = None) -> str:
    return to_base64(bars_figure(rows, metrics), stamp)


def _value_range(groups: list[tuple[str, list[Example]]]) -> tuple[float, float]:
    values = [e.score_map for _, examples in groups for e in examples]
    low = min(float(np.min(v)) for v in values)
    high = max(float(np.max(v)) for v in values)
    return low, max(high, low + 1e-12)


def _tile(ax, example: Example, value_range: tuple[float, float]):
    """Anatomy in grey, the map translucent over it, the ground truth as an outline."""
    ax.set_axis_off()
    extent = (0, example.score_map.shape[1], example.score_map.shape[0], 0)  # one extent for all layers
    if example.image is not None:
        ax.imshow(example.image, cmap="gray" if example.image.ndim == 2 else None, extent=extent,
                  vmin=0, vmax=1 if example.image.dtype.kind == "f" else 255, interpolation="nearest")
    shown = ax.imshow(example.score_map, cmap="jet", alpha=_MAP_ALPHA if example.image is not None else 1.0,
                      vmin=value_range[0], vmax=value_range[1], extent=extent, interpolation="nearest")
    if example.mask.any() and not example.mask.all():
        rows, cols = example.mask.shape  # contour at pixel centres, as imshow places them in this extent
        ax.contour(np.arange(cols) + 0.5, np.arange(rows) + 0.5, example.mask.astype(np.uint8), levels=[0.5],
                   colors=_TRUTH_COLOUR, linewidths=1.0)
    caption = "\n".join(textwrap.fill(line, _LABEL_WIDTH) for line in example.caption.split("\n"))
    ax.set_title(caption, fontsize=7, loc="left")
    return shown


def overlays_figure(groups: list[tuple[str, list[Example]]]):
    """A grid of tiles: one row per group (e.g. highest-scoring normals), its name above the row.

    Map colours share one scale over all tiles (colour bar on the right); the ground truth is the
    green outline.
    """
    columns = max(len(examples) for _, examples in groups)
    fig = _figure(2.6 * columns + 1.2, 3.0 * len(groups))
    tiles, legend = fig.subfigures(1, 2, width_ratios=[2.6 * columns, 1.2])
    rows = tiles.subfigures(len(groups), 1, squeeze=False)[:, 0]
    value_range = _value_range(groups)
    shown = None
    for row, (title, examples) in zip(rows, groups, strict=True):
        row.suptitle(title, fontsize=9, fontweight="bold", x=0.02, ha="left")
        axes = row.subplots(1, columns, squeeze=False)[0]
        for col, ax in enumerate(axes):
            ax.set_axis_off()
            if col < len(examples):
                shown = _tile(ax, examples[col], value_range)
    if shown is not None:
        legend.colorbar(shown, cax=legend.add_axes((0.15, 0.25, 0.15, 0.5)),
                        label="anomaly map (as evaluated)\ngreen outline: ground truth")
    return fig


def overlays_png(groups: list[tuple[str, list[Example]]], stamp: str | None = None) -> str:
    return to_base64(overlays_figure(groups), stamp)


def blend_rgb(image: np.ndarray | None, score_map: np.ndarray, mask: np.ndarray,
              value_range: tuple[float, float]) -> np.ndarray:
    """(H, W, 3) uint8: the image with the map blended in and the ground truth outlined (viewer 'after')."""
    from matplotlib import colormaps
    from scipy import ndimage

    low, high = value_range
    heat = colormaps["jet"](np.clip((score_map - low) / max(high - low, 1e-12), 0, 1))[..., :3]
    if image is None:
        rgb = heat
    else:
        base = image.astype(np.float64) / (255.0 if image.dtype.kind in "ui" else 1.0)
        base = np.repeat(base[..., None], 3, axis=-1) if base.ndim == 2 else base
        rgb = (1 - _MAP_ALPHA) * base + _MAP_ALPHA * heat
    edge = mask & ~ndimage.binary_erosion(mask)
    rgb[edge] = (0.0, 1.0, 0.0)
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
