"""One call from a predictions directory to the reports (JSON, CSV, HTML, Markdown).

This is what ``aaclip-med evaluate`` and the bundle call. Classes are evaluated one after the
other, so peak memory is that of the largest class (see ``accumulator.py`` for the bound), plus
the run's one cache of decoded mask volumes (kept as uint8 from the metric pass for the report
and viewer pass), bounded by ``cache_mb``, plus the one source volume the report pass holds.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from aaclip_med.data.cache import VolumeCache
from aaclip_med.evaluation.class_eval import METRIC_NAMES, ClassResult, evaluate_class
from aaclip_med.evaluation.predictions import load_samples, read_run
from aaclip_med.evaluation.protocol import Protocol
from aaclip_med.evaluation.published import get_published, list_published
from aaclip_med.evaluation.report_files import write_csv, write_markdown
from aaclip_med.evaluation.report_html import write_report_pages
from aaclip_med.evaluation.settings import DEFAULT_CACHE_MB
from aaclip_med.files import write_json_atomic
from aaclip_med.identity import is_random_weights
from aaclip_med.keys import Domain
from aaclip_med.packages import installed_versions
from aaclip_med.timestamps import utc_timestamp
from aaclip_med.units import mb_to_bytes

__all__ = ["evaluate_predictions", "REPORT_FILES", "DEFAULT_CACHE_MB"]

logger = logging.getLogger(__name__)

REPORT_FILES = ("report.json", "metrics.csv", "report.html", "report.md")
_PACKAGES = (
    "aaclip-med",
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "monai",
    "open_clip_torch",
    "matplotlib",
)


def _walk(node, prefix: str = ""):
    """Yield (dotted key, value) of every leaf of a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def file_hashes(run: dict) -> dict[str, str]:
    """Every entry of run.json whose key mentions a hash (weights, adapters, manifest)."""
    return {
        k: v for k, v in _walk(run) if isinstance(v, str) and ("sha256" in k.lower() or "hash" in k.lower())
    }


def random_weights(run: dict) -> bool:
    """Whether run.json says the backbone had random weights (``random_weights: true`` or a
    ``pretrained`` entry that is empty, none or random)."""
    for key, value in _walk(run):
        leaf = key.rsplit(".", 1)[-1].lower()
        if leaf in {"random_weights", "weights_random"} and value is True:
            return True
        if leaf == "pretrained" and is_random_weights(value):
            return True
    return False


def _mean(rows: list[dict]) -> dict:
    """Mean over classes of every metric, over the classes where it is defined."""
    out = {}
    for name in METRIC_NAMES:
        values = [row[name] for row in rows if row.get(name) is not None]
        out[name] = float(np.mean(values)) if values else None
        out[f"{name}_classes"] = len(values)
    return out


def _group(samples: list) -> dict[str, list]:
    groups: dict[str, list] = {}
    for sample in samples:
        groups.setdefault(sample.class_name, []).append(sample)
    return groups


def _report(results: list[ClassResult], run: dict, protocol: Protocol, dataset: str | None, **paths) -> dict:
    rows = []
    for result in results:
        row = result.row()
        row["normalisation"] = result.normaliser.to_dict()
        for level, metrics in (("pixel", result.pixel), ("image", result.image)):
            if metrics is not None:
                row[f"{level}_f1_threshold"] = metrics.f1_threshold
                row[f"{level}_counts"] = {"positive": metrics.n_pos, "negative": metrics.n_neg}
        if result.pixel is not None:
            row["n_regions"] = result.pixel.n_regions
        rows.append(row)
    return {
        "protocol": str(protocol),
        "dataset": dataset,
        "created_utc": utc_timestamp(),
        "units": "fractions in [0, 1]; null = not defined (see 'undefined')",
        "classes": rows,
        "mean": _mean(rows),
        "published": get_published(dataset) if dataset else None,
        "random_weights": random_weights(run),
        "file_hashes": file_hashes(run),
        "run": run,
        "package_versions": installed_versions(_PACKAGES),
        "inputs": {k: str(v) for k, v in paths.items()},
    }


def evaluate_predictions(
    manifest: str | Path,
    dataset_root: str | Path,
    predictions_dir: str | Path,
    out_dir: str | Path,
    protocol: str = "deployment",
    dataset: str | None = None,
    fpr_limit: float = 0.3,
    examples_per_group: int = 3,
    cache_mb: int = DEFAULT_CACHE_MB,
    viewer: bool = True,
    figures_dir: str | Path | None = None,
) -> dict:
    """Evaluate what ``aaclip-med infer --manifest`` wrote and write the reports.

    Args:
        manifest: JSON-lines manifest (ground truth: labels and mask paths).
        dataset_root: root the manifest paths are relative to.
        predictions_dir: directory with predictions.jsonl, maps/ and run.json.
        out_dir: directory for report.json, metrics.csv, report.html and report.md (created;
            nothing is written elsewhere).
        protocol: ``paper`` (per-class test-set normalisation, spec section 5) or
            ``deployment`` (scores as written by inference).
        dataset: dataset name for the comparison with published numbers (default: run.json's
            ``dataset`` entry, if any).
        fpr_limit: FPR limit of AUPRO.
        examples_per_group: overlay tiles per example group and class in the HTML.
        cache_mb: budget (MB, :data:`aaclip_med.units.MB`) of the run's cache of decoded mask volumes; 0 decodes a mask volume
            for each of its slices. It changes memory use and time, never a result (its
            statistics are in report.json under ``volume_cache``).
        viewer: also write ``viewer.html`` and its volumes (off: report.html only).
        figures_dir: also save the report's figures there as PNG files (the demo's ``figures/``).

    Returns:
        The report dictionary (as written to report.json).

    Raises:
        ValueError: on an unknown protocol or dataset name, a negative ``cache_mb``, or
            inconsistent inputs (the message names the file).
    """
    if protocol not in {p.value for p in Protocol}:
        msg = f"unknown protocol {protocol!r}; choose one of {[p.value for p in Protocol]}"
        raise ValueError(msg)
    if cache_mb < 0:
        msg = f"cache_mb must be >= 0 (0 turns the volume cache off), got {cache_mb}"
        raise ValueError(msg)
    cache = VolumeCache(mb_to_bytes(cache_mb))
    protocol = Protocol(protocol)
    if dataset is not None and get_published(dataset) is None:  # a typo would silently drop the comparison
        msg = (f"dataset {dataset!r} has no published numbers to compare with; known: {', '.join(list_published())} "
               "(leave it out for a report without the comparison)")
        raise ValueError(msg)
    predictions_dir, dataset_root, out_dir = Path(predictions_dir), Path(dataset_root), Path(out_dir)
    run = read_run(predictions_dir)
    dataset = dataset or run.get("dataset")
    default_domain = str(run.get("domain") or Domain.MEDICAL)
    samples = load_samples(Path(manifest), predictions_dir, default_domain)
    started = time.perf_counter()
    results = [
        evaluate_class(name, group, predictions_dir, dataset_root, protocol, fpr_limit, cache)
        for name, group in _group(samples).items()
    ]
    report = _report(
        results,
        run,
        protocol,
        dataset,
        manifest=manifest,
        dataset_root=dataset_root,
        predictions=predictions_dir,
    )
    report["fpr_limit"] = fpr_limit
    report["metrics_seconds"] = round(time.perf_counter() - started, 3)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "report.json", report)
    write_csv(out_dir / "metrics.csv", report)
    write_markdown(out_dir / "report.md", report)
    write_report_pages(out_dir, report, results, predictions_dir, dataset_root, Path(manifest), examples_per_group,
                       cache=cache, viewer=viewer, figures_dir=None if figures_dir is None else Path(figures_dir))
    report["volume_cache"] = {"budget_mb": cache_mb, **cache.stats()}
    write_json_atomic(out_dir / "report.json", report)  # again, with the report pass's cache figures
    logger.info("wrote %s to %s (volume cache: %s)", ", ".join(REPORT_FILES), out_dir, report["volume_cache"])
    return report
