"""Figures of a demo run: an overlay montage and ROC curves, as PNG files.

Both are read back from what the pipeline wrote (the sample's manifest and masks, the predictions
directory), so they show exactly what inference produced. Curves use scikit-learn's ``roc_curve``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402

from aaclip_med.data import load_image  # noqa: E402
from aaclip_med.evaluation.predictions import Sample, load_map, load_mask, load_samples  # noqa: E402
from aaclip_med.files import write_bytes_atomic  # noqa: E402

__all__ = ["overlay_montage", "roc_figure"]

logger = logging.getLogger(__name__)


def _display_image(root: Path, sample: Sample) -> np.ndarray:
    """The source slice or image scaled to [0, 1] for display: (H, W) or (H, W, 3)."""
    image = load_image(root / sample.image_path)
    array = np.asarray(image)
    if array.ndim == 4:  # (1, X, Y, Z) volume: the slice the manifest line names
        array = array[0, ..., sample.slice_index or 0]
    else:
        array = np.moveaxis(array, 0, -1).squeeze(-1) if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    low, high = np.percentile(array, [1, 99.5])
    return np.clip((array - low) / max(high - low, 1e-6), 0, 1)


def _example_per_class(samples: list[Sample]) -> list[Sample]:
    """One anomalous sample per class: the middle one in manifest order (mid-lesion for volumes)."""
    anomalous: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.label:
            anomalous.setdefault(sample.class_name, []).append(sample)
    return [group[len(group) // 2] for group in anomalous.values()]


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def overlay_montage(manifest: Path, dataset_root: Path, predictions_dir: Path, path: Path, title: str = "") -> Path:
    """Per class: the image, the anomaly map over it, and the ground-truth outline (red).

    Map colours are scaled per class over that class's test maps (display only; the written maps
    are raw).
    """
    samples = load_samples(manifest, predictions_dir, "medical")
    examples = _example_per_class(samples)
    fig, axes = plt.subplots(2, len(examples), figsize=(2.4 * len(examples), 5.2), squeeze=False)
    for col, sample in enumerate(examples):
        maps = [load_map(predictions_dir, s) for s in samples if s.class_name == sample.class_name]
        low, high = min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)
        score_map = (load_map(predictions_dir, sample) - low) / max(high - low, 1e-12)
        image = _display_image(dataset_root, sample)
        mask = load_mask(dataset_root, sample, score_map.shape)
        cmap = "gray" if image.ndim == 2 else None
        axes[0, col].imshow(image, cmap=cmap)
        axes[0, col].contour(mask, [0.5], colors="red", linewidths=0.8)
        axes[0, col].set_title(f"{sample.class_name}" + (f" z={sample.slice_index}" if sample.slice_index is not None else ""), fontsize=9)
        axes[1, col].imshow(image, cmap=cmap)
        axes[1, col].imshow(score_map, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[1, col].contour(mask, [0.5], colors="white", linewidths=0.8)
        for ax in axes[:, col]:
            ax.set_axis_off()
    axes[0, 0].text(-0.08, 0.5, "image + truth", transform=axes[0, 0].transAxes, rotation=90, va="center", ha="right", fontsize=9)
    axes[1, 0].text(-0.08, 0.5, "anomaly map", transform=axes[1, 0].transAxes, rotation=90, va="center", ha="right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10, color="darkred" if "RANDOM" in title else "black")
    return _save(fig, path)


def _pixel_scores(samples: list[Sample], dataset_root: Path, predictions_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    scores, truth = [], []
    for sample in samples:
        score_map = load_map(predictions_dir, sample)
        scores.append(np.asarray(score_map, float).ravel())
        truth.append(load_mask(dataset_root, sample, score_map.shape).ravel())
    return np.concatenate(scores), np.concatenate(truth)


def roc_figure(manifest: Path, dataset_root: Path, predictions_dir: Path, path: Path, title: str = "") -> Path:
    """Image-level and pixel-level ROC curves, one line per class, AUROC in the legend."""
    samples = load_samples(manifest, predictions_dir, "medical")
    fig, (ax_img, ax_pix) = plt.subplots(1, 2, figsize=(10, 4.4))
    for name in sorted({s.class_name for s in samples}):
        group = [s for s in samples if s.class_name == name]
        labels = np.array([s.label for s in group])
        if 0 < labels.sum() < len(labels):  # image ROC needs both normal and anomalous samples
            scores = np.array([s.image_score for s in group])
            fpr, tpr, _ = roc_curve(labels, scores)
            ax_img.plot(fpr, tpr, label=f"{name} ({roc_auc_score(labels, scores):.2f})")
        pixel_scores, pixel_truth = _pixel_scores(group, dataset_root, predictions_dir)
        if pixel_truth.any() and not pixel_truth.all():
            fpr, tpr, _ = roc_curve(pixel_truth, pixel_scores, drop_intermediate=True)
            ax_pix.plot(fpr, tpr, label=f"{name} ({roc_auc_score(pixel_truth, pixel_scores):.2f})")
    for ax, level in ((ax_img, "image"), (ax_pix, "pixel")):
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{level}-level ROC (AUROC)")
        ax.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10, color="darkred" if "RANDOM" in title else "black")
    return _save(fig, path)
