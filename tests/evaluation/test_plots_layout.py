"""The report's figures are readable: no tile title over another tile, no legend over the data."""

from __future__ import annotations

import itertools

import numpy as np

from aaclip_med.evaluation.accumulator import ImageAccumulator
from aaclip_med.evaluation.class_eval import METRIC_NAMES
from aaclip_med.evaluation.plots import ClassCurves, Example, bars_figure, overlays_figure, overview_figure


def _render(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 - 0.5 and b.x0 < a.x1 - 0.5 and a.y0 < b.y1 - 0.5 and b.y0 < a.y1 - 0.5


def _examples(rng, n: int) -> list[Example]:
    tiles = []
    for k in range(n):
        mask = np.zeros((40, 52), bool)
        mask[10:20, 15:30] = True
        image = rng.random((40, 52)) if k % 2 else (rng.random((40, 52, 3)) * 255).astype(np.uint8)
        caption = f"bottle · broken_large/very_long_file_name_{k:03d}.png · slice {k} of 250\nscore 0.{k}1 · anomalous"
        tiles.append(Example(image, rng.random((40, 52)).astype(np.float32), mask, caption))
    return tiles


def test_tile_titles_overlap_nothing():
    rng = np.random.default_rng(0)
    groups = [(name, _examples(rng, 3)) for name in ("highest-scoring normals (false alarms)",
                                                   "lowest-scoring anomalies (misses)", "best detections")]
    fig = overlays_figure(groups)
    renderer = _render(fig)
    tiles = [ax for ax in fig.get_axes() if ax.images]
    assert len(tiles) == 9
    boxes = [(ax.title.get_window_extent(renderer), ax.get_window_extent(renderer)) for ax in tiles]
    rows = [sub._suptitle.get_window_extent(renderer) for sub in fig.subfigs[0].subfigs]
    for (title1, _), (title2, image2) in itertools.permutations(boxes, 2):
        assert not _overlap(title1, image2), "a tile title runs into another tile"
        assert not _overlap(title1, title2), "two tile titles overlap"
    for row, (title, image) in itertools.product(rows, boxes):
        assert not _overlap(row, title) and not _overlap(row, image), "a group title covers a tile"
    colour_bar = next(ax for ax in fig.get_axes() if not ax.images and ax.get_ylabel())
    assert not any(_overlap(colour_bar.get_window_extent(renderer), image) for _, image in boxes)


def _curves(rng, auroc_shift: float):
    labels = rng.random(400) < 0.3
    scores = rng.random(400) + auroc_shift * labels
    accumulator = ImageAccumulator()
    for score, label in zip(scores, labels, strict=True):
        accumulator.update(float(score), float(label))
    metrics, reason = accumulator.compute()
    assert reason is None
    return metrics


def test_bar_legend_is_beside_the_bars():
    rows = [{"class_name": f"class{n}", **{m: 0.97 for m in METRIC_NAMES}} for n in range(6)]
    fig = bars_figure(rows, METRIC_NAMES)
    renderer = _render(fig)
    legend = fig.legends[0].get_window_extent(renderer)
    (ax,) = fig.get_axes()
    assert not _overlap(legend, ax.get_window_extent(renderer))
    assert len(fig.legends[0].get_texts()) == len(METRIC_NAMES)


def test_overview_has_every_class_and_no_legend_inside_a_panel():
    rng = np.random.default_rng(1)
    classes = [ClassCurves(f"class{n}", _curves(rng, 0.5), _curves(rng, n / 10)) for n in range(12)]
    classes.append(ClassCurves("no pixel truth", None, _curves(rng, 0.3)))
    fig = overview_figure(classes)
    renderer = _render(fig)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [c.class_name for c in classes]
    for ax in fig.get_axes():
        assert ax.get_legend() is None and not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    titles = sorted(ax.get_title() for ax in fig.get_axes())
    assert titles == ["image level: ROC", "image level: precision-recall", "pixel level: ROC",
                      "pixel level: precision-recall"]
    pixel_roc = next(ax for ax in fig.get_axes() if ax.get_title() == "pixel level: ROC")
    assert len(pixel_roc.get_lines()) == 12 + 1  # one per class with pixel truth, plus the diagonal


def test_a_stamp_sits_above_the_figure_and_over_nothing():
    """A random-weights warning is drawn on the PNG itself (the demo saves the figures as files)."""
    import base64
    import io

    from PIL import Image

    from aaclip_med.evaluation.plots import to_base64

    rows = [{"class_name": "bottle", **{m: 0.5 for m in METRIC_NAMES}}]
    plain = Image.open(io.BytesIO(base64.b64decode(to_base64(bars_figure(rows, METRIC_NAMES)))))
    fig = bars_figure(rows, METRIC_NAMES)
    stamped = Image.open(io.BytesIO(base64.b64decode(to_base64(fig, "RANDOM WEIGHTS"))))
    assert stamped.size[1] > plain.size[1]  # the saved area grew to hold the line above
    renderer = _render(fig)
    stamp = next(t for t in fig.texts if t.get_text() == "RANDOM WEIGHTS").get_window_extent(renderer)
    assert all(not _overlap(stamp, ax.get_window_extent(renderer)) for ax in fig.get_axes())
