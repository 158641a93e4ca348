"""Benchmark helpers of the speed work: block FLOP count, skip rules, the summary of `make bench`."""

import sys
from pathlib import Path

import pytest
import torch
from open_clip.transformer import ResidualAttentionBlock
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import block as block_bench  # noqa: E402
import forward  # noqa: E402
from run_all import speed_summary  # noqa: E402


def test_block_flop_count_matches_flop_counter():
    block = ResidualAttentionBlock(64, 4, batch_first=True).eval()
    x = torch.randn(2, 50, 64)
    # the plain layout: FlopCounterMode counts aten matmuls, and the oneDNN linear is opaque to it
    runner = block_bench.make_runner(block, "prepared-fp32-sdpa-plain", torch.device("cpu"), False)
    with torch.no_grad(), FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        runner(x)
    assert block_bench.block_flops(64, 50, 2) == counter.get_total_flops()
    assert block_bench.block_flops(1024, 1370, 1) == pytest.approx(42.2e9, rel=0.01)  # 1/24 of ViT-L at 518


def test_emulated_bf16_is_skipped_on_cpu_unless_asked(monkeypatch):
    monkeypatch.setattr(forward, "cpu_supports_bf16", lambda: False)
    args = forward.parse_args([])
    cpu = torch.device("cpu")
    assert "no native bf16" in forward.skip_reason("fast-bf16", cpu, args)
    assert forward.skip_reason("fast-fp32", cpu, args) is None and forward.skip_reason("fast-int8", cpu, args) is None
    assert forward.skip_reason("fast-bf16", cpu, forward.parse_args(["--allow-emulated-bf16"])) is None
    assert "CPU only" in forward.skip_reason("fast-int8", torch.device("cuda"), args)
    assert forward.path_dtype("fast-int8") == "fp32" and forward.path_dtype("fast-bf16") == "bf16"


def test_summary_prints_flags_fractions_ratios_and_accuracy():
    records = [
        {"script": "forward.py", "kind": "host", "cpu_model": "X", "cpu_flags": ["avx2", "fma"], "cpu_native_bf16": False,
         "threads": 2, "load_avg_1m": 1.0},
        {"script": "forward.py", "kind": "forward", "final": True, "path": "fast-int8", "batch": 1, "dtype": "fp32",
         "achieved_gflops": 30.0, "fraction_of_peak": 1.2, "fraction_of_local_peak": 1.1},
        {"script": "forward.py", "kind": "speedup", "path": "fast-int8", "vs": "fast-fp32", "batch": 1, "speedup": 1.5},
        {"script": "forward.py", "kind": "accuracy", "path": "fast-int8", "vs": "fast-fp32", "images": 7,
         "map_pearson_pooled": 0.9995, "map_pearson_min_per_image": 0.9991, "score_spearman": 1.0},
        {"script": "data_loading.py", "kind": "data", "stage": "cohort", "format": "dicom", "workers": 0,
         "order": "manifest", "cache": "4 case(s)", "reads": 4, "slices": 64, "slices_per_s": 16.0},
    ]
    text = "\n".join(speed_summary(records))
    assert "flags avx2 fma" in text and "native bf16 False" in text
    assert "1.2 of the run's fp32 matmul peak" in text
    assert "speed ratio fast-int8 / fast-fp32 batch 1: 1.5x" in text
    assert "map Pearson 0.9995 (min per image 0.9991)" in text and "Spearman 1\n" in text
    assert "4 volume reads for 64 slices" in text


def test_export_benchmark_skips_engines_whose_package_is_missing(monkeypatch):
    import export_engines

    real = export_engines.importlib.util.find_spec
    monkeypatch.setattr(export_engines.importlib.util, "find_spec", lambda name: None if name == "openvino" else real(name))
    assert export_engines.skip_reason("ov-fp32") == "openvino is not installed (pip install 'aaclip-med[export]')"
    assert export_engines.skip_reason("ov-int8").startswith("openvino is not installed")
    assert export_engines.skip_reason("torch-fast-fp32") is None
    assert export_engines.skip_reason("ort-int8") is None  # onnxruntime and onnx are installed (test extra)
