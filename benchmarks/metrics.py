"""Time and peak memory of the full evaluation metric set at benchmark scale.

Usage: ``python benchmarks/metrics.py [--n 2000] [--size 518]``. Each measurement runs in its own
subprocess so that its peak resident memory (``ru_maxrss``, which counts numpy's C allocations,
unlike tracemalloc) is its own. Synthetic predictions: uniform float32 maps, half of the images
anomalous with two rectangular regions (about 5 % of the image) scored higher.

Measurements:
- ``ours``: PixelAccumulator (AUROC, AP, F1-max, AUPRO@0.3) fed image by image, plus the
  image-level metrics; the maps are generated on the fly and never all held.
- ``sklearn``: roc_auc_score + average_precision_score on the same pixels held in memory
  (skipped with a message when its estimated peak would not fit in available memory).

Prints one JSON line per measurement, then a short table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from aaclip_med.units import in_mb

SKLEARN_BYTES_PER_PIXEL = 60  # measured ~56 at N=100: inputs, argsort int64, sorted copies, float64 cumsums


def synthetic(index: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Map, mask, image score and label of image ``index`` (deterministic per index)."""
    rng = np.random.default_rng([seed, index])
    score_map = rng.random((size, size), dtype=np.float32)
    mask = np.zeros((size, size), dtype=bool)
    label = float(index % 2)
    if label:
        side = size // 6
        for _ in range(2):
            y, x = rng.integers(0, size - side, 2)
            mask[y : y + side, x : x + side] = True
        score_map[mask] += np.float32(0.3)
    return score_map, mask, float(score_map.max()) + float(rng.random()) * 0.1, label


def _maxrss_mb() -> float:
    return in_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB


def worker_ours(n: int, size: int, seed: int) -> dict:
    from aaclip_med.evaluation.accumulator import ImageAccumulator, PixelAccumulator

    base = _maxrss_mb()
    pixels, images = PixelAccumulator(fpr_limit=0.3), ImageAccumulator()
    gen_s, start = 0.0, time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        score_map, mask, score, label = synthetic(i, size, seed)
        gen_s += time.perf_counter() - t0
        pixels.update(score_map, mask)
        images.update(score, label)
    fed = time.perf_counter()
    pixel, _ = pixels.compute()
    image, _ = images.compute()
    end = time.perf_counter()
    return {
        "method": "ours (exact, streaming)",
        "n": n,
        "pixels": n * size * size,
        "seconds": round(end - start - gen_s, 2),
        "seconds_update": round(fed - start - gen_s, 2),
        "seconds_compute": round(end - fed, 2),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "baseline_rss_mb": round(base, 1),
        "pixel_auroc": pixel.auroc,
        "pixel_ap": pixel.ap,
        "pixel_aupro": pixel.aupro,
        "pixel_f1_max": pixel.f1_max,
        "image_auroc": image.auroc,
    }


def worker_sklearn(n: int, size: int, seed: int) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    base = _maxrss_mb()
    scores = np.empty((n, size, size), dtype=np.float32)
    truth = np.empty((n, size, size), dtype=bool)
    gen_start = time.perf_counter()
    for i in range(n):
        scores[i], truth[i], _, _ = synthetic(i, size, seed)
    start = time.perf_counter()
    auroc = roc_auc_score(truth.ravel(), scores.ravel())
    ap = average_precision_score(truth.ravel(), scores.ravel())
    end = time.perf_counter()
    return {
        "method": "sklearn roc_auc_score + average_precision_score",
        "n": n,
        "pixels": n * size * size,
        "seconds": round(end - start, 2),
        "seconds_generate": round(start - gen_start, 2),
        "peak_rss_mb": round(_maxrss_mb(), 1),
        "baseline_rss_mb": round(base, 1),
        "pixel_auroc": auroc,
        "pixel_ap": ap,
    }


def available_mb() -> float:
    """MemAvailable from /proc/meminfo (Linux), or infinity when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return in_mb(int(line.split()[1]) * 1024)  # kB
    except OSError:
        pass
    return float("inf")


def measure(kind: str, args: argparse.Namespace) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", kind, "--n", str(args.n), "--size", str(args.size)]
    cmd += ["--seed", str(args.seed)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(json.dumps({"method": kind, "error": done.stderr.strip().splitlines()[-1:]}))
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    parser.add_argument("--size", type=int, default=518, help="map side in pixels (default 518)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn", action="store_true", help="measure only our implementation")
    parser.add_argument("--worker", choices=["ours", "sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fn = worker_ours if args.worker == "ours" else worker_sklearn
        print(json.dumps(fn(args.n, args.size, args.seed)))
        return
    results = [measure("ours", args)]
    need_mb = in_mb(args.n * args.size**2 * SKLEARN_BYTES_PER_PIXEL)
    if args.skip_sklearn:
        pass
    elif need_mb > 0.8 * available_mb():
        print(f"# sklearn skipped: needs ~{need_mb:.0f} MB, {available_mb():.0f} MB available")
    else:
        results.append(measure("sklearn", args))
    print(f"# {args.n} x {args.size} x {args.size} = {args.n * args.size**2 / 1e6:.0f} M pixels")
    print(f"# {'method':50s} {'seconds':>8s} {'peak MB':>9s} {'AUROC':>10s} {'AP':>10s}")
    for r in filter(None, results):
        print(
            f"# {r['method']:50s} {r['seconds']:8.2f} {r['peak_rss_mb']:9.0f} {r['pixel_auroc']:10.7f} {r['pixel_ap']:10.7f}"
        )


if __name__ == "__main__":
    main()
