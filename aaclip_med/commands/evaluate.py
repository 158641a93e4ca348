"""``aaclip-med evaluate``: metrics and reports from what ``aaclip-med infer --manifest`` wrote."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aaclip_med.arguments import check_paths
from aaclip_med.evaluation.settings import DEFAULT_CACHE_MB
from aaclip_med.inference.layout import PREDICTIONS_FILE

__all__ = ["add_arguments", "run"]



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, help="JSON-lines manifest with labels and mask paths")
    parser.add_argument("--dataset-root", help="folder the manifest paths are relative to (default: the manifest's folder)")
    parser.add_argument("--predictions", required=True, help="predictions folder written by 'aaclip-med infer --manifest'")
    parser.add_argument("--out", required=True, help="folder for report.json, metrics.csv, report.html, report.md")
    parser.add_argument("--protocol", choices=["paper", "deployment"], default="deployment",
                        help="paper: per-class min-max over the test set (benchmarks only); "
                             "deployment: scores as written, no test statistics")
    parser.add_argument("--dataset", default=None, help="dataset name for the comparison with published numbers")
    parser.add_argument("--fpr-limit", type=float, default=0.3, help="FPR limit of AUPRO")
    parser.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_MB, metavar="MB",
                        help="memory budget of the cache of decoded mask volumes (default %(default)s MB; 0 decodes a "
                             "mask volume for each of its slices): changes memory use and time, never a result")
    parser.add_argument("--no-viewer", action="store_true",
                        help="write report.html without viewer.html and its volumes (a smaller report folder)")


def _check(args: argparse.Namespace) -> None:
    check_paths(manifest=args.manifest, dataset_root=args.dataset_root, predictions=args.predictions)
    if args.cache_mb < 0:
        msg = f"--cache-mb must be >= 0 (0 turns the volume cache off), got {args.cache_mb}"
        raise ValueError(msg)
    predictions = Path(args.predictions)
    if not (predictions / PREDICTIONS_FILE).is_file():
        msg = (f"--predictions {predictions} is not a predictions folder (no {PREDICTIONS_FILE}); write one with "
               f"'aaclip-med infer --manifest {args.manifest} --out {predictions} ...' (an interrupted run: re-run it)")
        raise ValueError(msg)


def run(args: argparse.Namespace) -> int:
    _check(args)
    from aaclip_med.evaluation.evaluate import evaluate_predictions

    report = evaluate_predictions(
        args.manifest,
        args.dataset_root or Path(args.manifest).parent,
        args.predictions,
        args.out,
        protocol=args.protocol,
        dataset=args.dataset,
        fpr_limit=args.fpr_limit,
        cache_mb=args.cache_mb,
        viewer=not args.no_viewer,
    )
    summary = {k: report[k] for k in ("protocol", "random_weights") if k in report}
    summary["mean"] = report.get("mean")
    print(json.dumps(summary, indent=2, default=str))
    print(f"reports written to {args.out}")
    return 0
