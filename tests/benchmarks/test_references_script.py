"""benchmarks/references.py at toy size: its records hold what the docs quote (no timing asserted)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import references as bench  # noqa: E402

from aaclip_med.memory.search import faiss_available  # noqa: E402
from aaclip_med.units import mb_to_bytes  # noqa: E402


def test_build_and_score_records(capsys):
    args = bench.parse_args(["--build-backbone", "aaclip-tiny", "--build-size", "112", "--slices", "12",
                             "--build-max-mb", "0.05", "--score-backbone", "aaclip-tiny", "--score-size", "112",
                             "--score-max-mb", "1", "--repeats", "1", "--batch-size", "4", "--searches", "screen", "gemm"])
    build = bench.bench_build(args, None)
    model = bench._model("aaclip-tiny", 112)
    patch_bytes = len(model.config.levels) * model.embed_dim * 2  # one fp16 feature per level
    assert build["patches_seen"] == 12 * 64 and build["patches_kept"] < build["patches_seen"]  # the cap bit
    capacity = mb_to_bytes(0.05) // patch_bytes  # patches per level within the cap, in the package's MB
    assert capacity // 2 <= build["patches_kept"] <= capacity  # the store's final selection keeps half to all
    assert build["cap_mb"] == 0.05
    screen, gemm = bench.bench_score(args, None)  # both searches of the same run
    assert (screen["search"], gemm["search"]) == ("screen", "gemm") and screen["zero_shot_s"] == gemm["zero_shot_s"]
    for score in (screen, gemm):
        assert score["bank_rows_per_level"] == mb_to_bytes(1) // patch_bytes  # a full 1 MB memory
        assert score["bank_mb"] == 1
    assert screen["max_abs_diff_vs_fp32"] <= 1e-6 and screen["candidates_per_query"] >= 1  # exact, and rescored


@pytest.mark.skipif(not faiss_available(), reason="faiss-cpu (the 'ann' extra) is not installed")
@pytest.mark.parametrize("bank", ["features", "random"])
def test_approximate_search_records_its_recall_and_map_differences(bank):
    """A 1 MB memory of the tiny network: 4096 rows of 32 values per level, 105 clusters, 16 probed. On the network's own
    features most queries find their exact neighbour; on random features (no clusters) fewer; the index's
    maxima are never above the exact ones, and a miss only raises the map."""
    args = bench.parse_args(["--score-backbone", "aaclip-tiny", "--score-size", "112", "--score-max-mb", "1",
                             "--repeats", "1", "--searches", "screen", "approximate", "--bank", bank, "--bank-images", "2"])
    screen, approximate = bench.bench_score(args, None)
    assert approximate["search"] == "approximate" and approximate["zero_shot_s"] == screen["zero_shot_s"]
    assert (approximate["index_lists"], approximate["index_nprobe"]) == (4096 // 39, 16)
    assert approximate["max_cos_above_exact"] <= 1e-6 and approximate["max_cos_gap_max"] >= 0
    assert 0 < approximate["recall_at_1"] <= 1 and (approximate["recall_at_1"] >= 0.9 or bank == "random")
    assert approximate["recall_at_1"] < 1 or approximate["memory_map_diff_max"] <= 1e-5
    assert approximate["memory_map_diff_mean"] <= approximate["memory_map_diff_max"] <= 4 * approximate["max_cos_gap_max"]  # a sum of 4 levels
    assert approximate["map_diff_max"] <= approximate["memory_map_diff_max"]  # weight 0.5 of a map with std 1
