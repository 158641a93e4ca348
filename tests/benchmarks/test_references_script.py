"""benchmarks/references.py at toy size: its records hold what the docs quote (no timing asserted)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import references as bench  # noqa: E402

from aaclip_med.units import mb_to_bytes  # noqa: E402


def test_build_and_score_records(capsys):
    args = bench.parse_args(["--build-backbone", "aaclip-tiny", "--build-size", "112", "--slices", "12",
                             "--build-max-mb", "0.05", "--score-backbone", "aaclip-tiny", "--score-size", "112",
                             "--score-max-mb", "1", "--repeats", "1", "--batch-size", "4"])
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
