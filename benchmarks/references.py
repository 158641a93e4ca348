"""Reference memory: build time and peak RSS for N slices, and what scoring adds per image.

Usage (defaults: build with ViT-B-16 at 224 px from 500 synthetic CT slices under a 256 MB cap;
scoring at the paper's ViT-L-14-336 / 518 px with a full 256 MB memory; random weights, CPU)::

    python benchmarks/references.py
    python benchmarks/references.py --parts build --build-backbone aaclip-tiny --slices 100
    flock /tmp/heavy.lock prlimit --as=12000000000 python benchmarks/references.py --parts score

``build``: :func:`aaclip_med.adaptation.build_references` streams the slices (generated lazily, 10
per source, 256 x 256 HU with a body ellipse and noise), so the features never take more than the
cap plus one batch: the record gives the peak resident set (sampled) next to the model's own
size, the memory kept, and ``kept/seen`` patches.

``score``: one image at a time, the zero-shot prediction alone and with the memory (combined,
weight 0.5) under each ``--searches`` (``screen``: the exact int8-screened search; ``gemm``: blocked
products in the predictor's precision; ``approximate``: the faiss index, when faiss is installed),
alternating, best of ``--repeats``. The memory is a full ``--score-max-mb``: ``--bank random``
holds random unit features (the GEMM's cost does not depend on their values; the screen's
rescoring does, a little: ``candidates_per_query``; for an index they are the worst case, with no
clusters to find); ``--bank features`` (the default) holds the network's own patch features of
``--bank-images`` random images, each repeated with a small random turn (cosine about 0.96 to its
source) until the memory is full, so that the scored image's patches have near neighbours as
they have in normal references. ``added_fraction`` = (with memory - zero-shot) / zero-shot,
measured in the same run, next to the nearest-neighbour search alone as a fraction of the
zero-shot time and of the bf16 matmul probe of the same run, and each search's largest difference
from the float32 maximum (blocked float32 products) on the same features. For ``approximate``
also: ``index_build_s`` (all levels, once per memory), ``recall_at_1`` (queries whose maximum is
the exact float32 one within 1e-4), and the largest / mean difference against the exact float32
search of the memory map (``memory_map_*``: the raw ``M``, smoothed and upsampled) and of the final
combined map (``map_*``, in normal standard deviations with the benchmark's unit statistics).

Prints one JSON line per measurement (``kind``: host, matmul_peak, build, score), then a table.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import PeakMemory, emit, host_info, matmul_peak, print_table

from aaclip_med.adaptation import ClassMemory, ReferenceScorer, ReferenceSlices, build_references
from aaclip_med.inference import Predictor
from aaclip_med.memory.search import ScreenedBank, faiss_available, max_cosine
from aaclip_med.model import AAClipConfig, build_aaclip
from aaclip_med.units import in_mb, mb_to_bytes

_SLICES_PER_SOURCE = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=("build", "score"), default=["build", "score"])
    parser.add_argument("--build-backbone", default="ViT-B-16")
    parser.add_argument("--build-size", type=int, default=224)
    parser.add_argument("--slices", type=int, default=500)
    parser.add_argument("--build-max-mb", type=float, default=256.0)
    parser.add_argument("--score-backbone", default="ViT-L-14-336")
    parser.add_argument("--score-size", type=int, default=518)
    parser.add_argument("--score-max-mb", type=float, nargs="+", default=[256.0], help="one or more memory sizes")
    parser.add_argument("--precision", default="auto")
    searches = ["screen", "gemm", *(["approximate"] if faiss_available() else [])]
    parser.add_argument("--searches", nargs="+", choices=("screen", "gemm", "approximate"), default=searches)
    parser.add_argument("--bank", choices=("features", "random"), default="features",
                        help="what the scored memory holds (module docstring)")
    parser.add_argument("--bank-images", type=int, default=4, help="images whose features fill a 'features' memory")
    parser.add_argument("--nprobes", type=int, nargs="*", default=[],
                        help="also time the approximate search alone, and its recall, at these clusters probed per query")
    parser.add_argument("--threads", type=int, help="torch threads, and faiss's (default: PyTorch's)")
    parser.add_argument("--faiss-simd", choices=("avx2", "avx512"),
                        help="faiss's SIMD kernels (default: the best the CPU has); avx2 next to ATEN_CPU_CAPABILITY=avx2")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--jsonl", type=Path)
    return parser.parse_args(argv)


def _model(backbone: str, size: int):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_aaclip(AAClipConfig(backbone=backbone, image_size=size, pretrained="random")).eval()


def _ct_slices(count: int, seed: int = 0):
    """Sources of synthetic CT slices (HU), made when iterated: one source's slices in memory at a time."""
    yy, xx = np.mgrid[:256, :256]
    body = ((yy - 128) / 110) ** 2 + ((xx - 128) / 90) ** 2 < 1
    rng = np.random.default_rng(seed)
    for start in range(0, count, _SLICES_PER_SOURCE):
        slices = []
        for _ in range(min(_SLICES_PER_SOURCE, count - start)):
            image = np.where(body, 40 + rng.normal(0, 20, body.shape), -1000.0).astype(np.float32)
            slices.append(torch.as_tensor(image[None]))
        yield ReferenceSlices(f"synthetic{start}", slices, "ct")


def bench_build(args: argparse.Namespace, jsonl: Path | None) -> dict:
    model = _model(args.build_backbone, args.build_size)
    predictor = Predictor(model, "ct", batch_size=args.batch_size, precision=args.precision, device="cpu")
    model_mb = in_mb(sum(p.numel() * p.element_size() for p in model.parameters()))
    identity = {"backbone": args.build_backbone, "image_size": args.build_size}
    device = torch.device("cpu")
    start = time.perf_counter()
    with PeakMemory(device) as peak:
        bank = build_references(predictor, {"scan": ("scan", _ct_slices(args.slices))}, args.build_max_mb, identity)
    seconds = time.perf_counter() - start
    memory = bank.classes["scan"]
    grid = model.grid_size[0] * model.grid_size[1]
    batch_features_mb = in_mb(args.batch_size * grid * len(memory.levels) * model.embed_dim * 2)
    record = {
        "kind": "build", "backbone": args.build_backbone, "image_size": args.build_size, "slices": args.slices,
        "precision": predictor.precision, "seconds": round(seconds, 1), "slices_per_s": round(args.slices / seconds, 2),
        "peak_rss_mb": round(peak.peak_mb), "rss_added_mb": round(peak.delta_mb), "model_params_mb": round(model_mb),
        "cap_mb": args.build_max_mb, "one_batch_features_mb": round(batch_features_mb, 1),
        "bank_mb": round(in_mb(bank.nbytes), 1), "patches_kept": memory.patches_kept, "patches_seen": memory.patches_seen,
    }
    emit(record, jsonl)
    return record


def _bank(model, max_mb: float, kind: str = "random", predictor: Predictor | None = None, images: int = 4,
          size: int = 224) -> ClassMemory:
    levels, width = len(model.config.levels), model.embed_dim
    rows = mb_to_bytes(max_mb) // (levels * width * 2)
    generator = torch.Generator().manual_seed(0)
    if kind == "random":
        features = [torch.nn.functional.normalize(torch.randn(rows, width, generator=generator), dim=1).half()
                    for _ in range(levels)]
    else:
        sources = [[] for _ in range(levels)]
        for n in range(images):
            image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1000 + n))
            feats, _ = predictor.encode(image, "scan", "medical")
            for level, found in enumerate(feats.levels):
                sources[level].append(found.reshape(-1, width).float())
        features = []
        for found in (torch.cat(parts) for parts in sources):
            repeated = found[torch.arange(rows) % found.shape[0]]
            turn = 0.3 / width**0.5 * torch.randn(rows, width, generator=generator)  # |turn| ~ 0.3: cosine ~0.96
            features.append(torch.nn.functional.normalize(repeated + turn, dim=1).half())
    stats = {"zero_shot_mean": 0.0, "zero_shot_std": 1.0, "memory_mean": 0.0, "memory_std": 1.0,
             "global_mean": 0.0, "global_std": 1.0}
    return ClassMemory("scan", "scan", "ct", "medical", features, stats, 0, rows)


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_score(args: argparse.Namespace, jsonl: Path | None) -> list[dict]:
    model = _model(args.score_backbone, args.score_size)
    predictor = Predictor(model, "ct", batch_size=1, precision=args.precision, device="cpu")
    return [record for max_mb in args.score_max_mb for record in _score_one(args, model, predictor, max_mb, jsonl)]


def _score_one(args: argparse.Namespace, model, predictor: Predictor, max_mb: float, jsonl: Path | None) -> list[dict]:
    memory = _bank(model, max_mb, args.bank, predictor, args.bank_images, args.score_size)
    scorers, build_s = {}, {}
    for name in args.searches:
        start = time.perf_counter()
        scorers[name] = ReferenceScorer(memory, 0.5, "cpu", predictor.precision, search=name)
        build_s[name] = time.perf_counter() - start
    image = torch.randn(1, 3, args.score_size, args.score_size)
    feats, _ = predictor.encode(image, "scan", "medical")  # warm-up, and the features the search alone reads
    queries = [f.reshape(-1, f.shape[-1]) for f in feats.levels]
    reference = [max_cosine(q, level.float()) for q, level in zip(queries, memory.levels, strict=True)]

    def predict(scorer=None):
        return lambda: predictor.predict_tensor(image, "scan", "medical", scorer)

    def search(scorer):
        return lambda: [scorer.max_cosine(index, query) for index, query in enumerate(queries)]

    for scorer in scorers.values():
        predict(scorer)()
    zero = float("inf")
    combined = dict.fromkeys(scorers, float("inf"))
    for _ in range(args.repeats):  # alternate so that every variant sees the same load
        zero = min(zero, _best(predict(), 1))
        for name, scorer in scorers.items():
            combined[name] = min(combined[name], _best(predict(scorer), 1))
    flops = 2.0 * sum(q.shape[0] * level.shape[0] * level.shape[1] for q, level in zip(queries, memory.levels, strict=True))
    records = []
    for name, scorer in scorers.items():
        search_s = _best(search(scorer), args.repeats)
        found = search(scorer)()
        error = max(float((got - want).abs().max()) for got, want in zip(found, reference, strict=True))
        screened = [bank for bank in scorer.banks if isinstance(bank, ScreenedBank)]
        record = {
            "kind": "score", "search": name, "backbone": args.score_backbone, "image_size": args.score_size,
            "precision": predictor.precision, "threads": torch.get_num_threads(), "bank": args.bank,
            "bank_mb": round(in_mb(sum(t.numel() * 2 for t in memory.levels))),
            "bank_rows_per_level": memory.levels[0].shape[0], "zero_shot_s": round(zero, 3),
            "with_memory_s": round(combined[name], 3), "added_fraction": round((combined[name] - zero) / zero, 3),
            "search_s": round(search_s, 3), "search_fraction": round(search_s / zero, 3),
            "search_gflops": round(flops / search_s / 1e9, 1), "max_abs_diff_vs_fp32": float(f"{error:.2e}"),
            "candidates_per_query": round(sum(b.candidates for b in screened) / sum(q.shape[0] for q in queries), 1)
            if screened else None,
            "int8_codes_mb": round(in_mb(sum(sum(c.numel() for c in b.codes) for b in screened))) if screened else None,
        }
        if name == "approximate":
            record |= {"index_build_s": round(build_s[name], 1), "index_lists": scorer.banks[0].lists,
                       "index_nprobe": scorer.banks[0].nprobe}
            record |= _approximation(scorer, memory, predictor, image, feats, found, reference)
        emit(record, jsonl)
        records.append(record)
        if name == "approximate":
            records += _nprobe_sweep(args, scorer, search, reference, zero, jsonl)
    if records[:2] and [r["search"] for r in records[:2]] == ["screen", "gemm"]:
        emit({"kind": "search_ratio", "screen_over_gemm": round(records[0]["search_s"] / records[1]["search_s"], 3)}, jsonl)
    return records


def _approximation(scorer, memory: ClassMemory, predictor: Predictor, image, feats, found, reference) -> dict:
    """Recall and map differences of the approximate search against the exact float32 one, same features."""
    gaps = torch.cat([want - got for got, want in zip(found, reference, strict=True)])
    exact = _ExactScorer(memory, reference)
    grid, size = predictor.model.grid_size, (image.shape[-2], image.shape[-1])
    memory_map = scorer.memory_map(feats.levels, grid, "medical", size)
    exact_map = exact.memory_map(feats.levels, grid, "medical", size)
    approximate = predictor.predict_tensor(image, "scan", "medical", scorer).anomaly_map.float()
    exact_pred = predictor.predict_tensor(image, "scan", "medical", exact).anomaly_map.float()
    return {
        "recall_at_1": round(float((gaps.abs() <= 1e-4).float().mean()), 4),
        "max_cos_gap_max": float(f"{float(gaps.max()):.2e}"), "max_cos_gap_mean": float(f"{float(gaps.mean()):.2e}"),
        "max_cos_above_exact": float(f"{float((-gaps).clamp_min(0).max()):.2e}"),
        "memory_map_diff_max": float(f"{float((memory_map - exact_map).abs().max()):.2e}"),
        "memory_map_diff_mean": float(f"{float((memory_map - exact_map).abs().mean()):.2e}"),
        "map_diff_max": float(f"{float((approximate - exact_pred).abs().max()):.2e}"),
        "map_diff_mean": float(f"{float((approximate - exact_pred).abs().mean()):.2e}"),
        "map_range": float(f"{float(exact_pred.max() - exact_pred.min()):.2e}"),
        # the spread of the exact M over this image: the differences above in its units read as they would
        # in a real memory's standardised map (whose std_M comes from references, not the benchmark's 1)
        "memory_map_std": float(f"{float(exact_map.std()):.2e}"),
    }


def _nprobe_sweep(args, scorer, search, reference, zero: float, jsonl: Path | None) -> list[dict]:
    """The approximate search alone at other ``nprobe`` (the same index), against the same zero-shot time."""
    default, records = scorer.banks[0].index.nprobe, []
    for nprobe in args.nprobes:
        for bank in scorer.banks:
            bank.index.nprobe = nprobe
        search_s = _best(search(scorer), args.repeats)
        gaps = torch.cat([want - got for got, want in zip(search(scorer)(), reference, strict=True)])
        record = {"kind": "nprobe", "search": f"approximate nprobe {nprobe}", "nprobe": nprobe,
                  "search_s": round(search_s, 3), "search_fraction": round(search_s / zero, 3),
                  "recall_at_1": round(float((gaps.abs() <= 1e-4).float().mean()), 4),
                  "max_cos_gap_max": float(f"{float(gaps.max()):.2e}"),
                  "max_cos_gap_mean": float(f"{float(gaps.mean()):.2e}")}
        emit(record, jsonl)
        records.append(record)
    for bank in scorer.banks:
        bank.index.nprobe = default
    return records


class _ExactScorer(ReferenceScorer):
    """A scorer whose maxima are the exact float32 ones computed before, for the features of the benchmark's image."""

    def __init__(self, memory: ClassMemory, maxima: list[torch.Tensor]) -> None:
        self.memory, self.weight, self.search, self.maxima = memory, 0.5, "exact", maxima
        self.banks = memory.levels

    def max_cosine(self, level: int, queries: torch.Tensor) -> torch.Tensor:
        if queries.shape[0] != self.maxima[level].shape[0]:
            raise ValueError("the exact scorer holds the maxima of the benchmark's one image only")
        return self.maxima[level]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    faiss_simd = {}
    if faiss_available():
        import faiss

        if args.faiss_simd:
            faiss.SIMDConfig.set_level(getattr(faiss, f"SIMDLevel_{args.faiss_simd.upper()}"))
        faiss_simd = {"faiss": faiss.__version__, "faiss_simd": faiss.SIMDConfig.get_level_name()}
    emit({"kind": "host", **host_info(device), **faiss_simd}, args.jsonl)
    peak = matmul_peak(torch.bfloat16, device, args.matmul_size, 2.0)
    emit(peak, args.jsonl)
    rows = []
    if "build" in args.parts:
        rows.append(bench_build(args, args.jsonl))
    if "score" in args.parts:
        for record in bench_score(args, args.jsonl):
            if record["kind"] != "score":
                rows.append(record)
                continue
            record["search_fraction_of_bf16_peak"] = round(record["search_gflops"] / peak["peak_gflops"], 3)
            emit({"kind": "score_vs_peak", "search": record["search"], "bank_mb": record["bank_mb"],
                  "search_fraction_of_bf16_peak": record["search_fraction_of_bf16_peak"]}, args.jsonl)
            rows.append(record)
    print_table(rows, ["kind", "search", "backbone", "image_size", "precision", "seconds", "peak_rss_mb", "bank_mb",
                       "patches_kept", "patches_seen", "zero_shot_s", "with_memory_s", "added_fraction",
                       "search_fraction", "max_abs_diff_vs_fp32", "candidates_per_query", "nprobe", "recall_at_1",
                       "memory_map_diff_max", "memory_map_diff_mean", "map_diff_max", "map_diff_mean"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
