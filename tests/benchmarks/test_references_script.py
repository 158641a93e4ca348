"""benchmarks/references.py at toy size: its records hold what the docs quote (no timing asserted)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import references as bench  # noqa: E402


def test_build_and_score_records(capsys):
    args = bench.parse_args(["--build-backbone", "aaclip-tiny", "--build-size", "112", "--slices", "12",
                             "--build-max-mb", "0.05", "--score-backbone", "aaclip-tiny", "--score-size", "112",
                             "--score-max-mb", "1", "--repeats", "1", "--batch-size", "4"])
    build = bench.bench_build(args, None)
    assert build["patches_seen"] == 12 * 64 and build["patches_kept"] < build["patches_seen"]  # the cap bit
    assert build["bank_mb"] * 2**20 <= 0.05e6 and build["peak_rss_mb"] > 0
    screen, gemm = bench.bench_score(args, None)  # both searches of the same run
    assert (screen["search"], gemm["search"]) == ("screen", "gemm") and screen["zero_shot_s"] == gemm["zero_shot_s"]
    width = bench._model("aaclip-tiny", 112).embed_dim
    for score in (screen, gemm):
        assert score["bank_rows_per_level"] == int(1e6 // (4 * width * 2))  # a full 1 MB memory
        assert score["with_memory_s"] > 0 and score["zero_shot_s"] > 0 and "added_fraction" in score
    assert screen["max_abs_diff_vs_fp32"] <= 1e-6 and screen["candidates_per_query"] >= 1  # exact, and rescored
