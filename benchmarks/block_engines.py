"""One ViT block in fp32: the fast path's layouts against OpenVINO and ONNX Runtime, interleaved.

A whole ViT-L forward takes seconds and a shared host's load moves within one; a block takes a
fraction of a second, so many rounds fit in a minute and the best of each variant compares
forwards run close in time. Variants, every one the same block on the same tokens:

- ``torch-onednn``: :class:`aaclip_med.model.fast.FrozenBlock` in the oneDNN blocked layout
  (what the fast path runs on a CPU with oneDNN);
- ``torch-plain``: the same block with the plain ``F.linear`` layout;
- ``openvino`` / ``onnxruntime``: that block exported to ONNX (opset 17) and run by OpenVINO's CPU
  plugin in f32 / ONNX Runtime's CPU provider, with the same thread count;
- ``probe``: the fp32 square matmul ``a @ b.T`` (2048), run in every round as well.

In each round every variant runs twice and the second call is timed, and ONNX Runtime runs without
spinning: a runtime's worker threads that spin after a call take the cores from the next
variant's threads (measured: a small torch block 2x slower right after an ONNX Runtime run). On a
host shared with other processes, any variant can lose a scheduler slice at a thread barrier (a
small block then takes 100x longer): read the best of the rounds, and the load in the host fields.

To see what a CPU without AVX-512 would do, restrict the ISA of torch and its libraries (OpenVINO
and ONNX Runtime carry their own kernels and may ignore these)::

    python benchmarks/block_engines.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 python benchmarks/block_engines.py

Prints one JSON line: best and median milliseconds per variant, fractions of the probe of the same
rounds, the largest difference from the plain block, and the speed-ups of the oneDNN layout.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import emit, host_info
from open_clip.transformer import ResidualAttentionBlock

from aaclip_med.model.fast import FrozenBlock, onednn_layout_works

_ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024, help="ViT-L: 1024")
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=1370, help="1 + 37 x 37 at 518 px")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--jsonl", type=Path)
    return parser.parse_args(argv)


def block_flops(width: int, tokens: int, batch: int) -> float:
    """Multiply-adds x 2 of one block: QKV, out-projection, the MLP (4x) and the two attention products."""
    return batch * (2 * tokens * width * 12 * width + 2 * 2 * tokens * tokens * width)


def _exported_runners(block: FrozenBlock, x: torch.Tensor, folder: Path) -> dict:
    """``openvino`` and ``onnxruntime`` runners of ``block`` exported to ONNX (those installed)."""

    class _Module(torch.nn.Module):
        def forward(self, tokens):
            return block(tokens)

    path = folder / "block.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Module().eval(), (x,), str(path), input_names=["x"], opset_version=17, dynamo=False)
    tokens, threads, runners = x.numpy(), torch.get_num_threads(), {}
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        runners["openvino"] = lambda: request.infer({"x": tokens})[compiled.outputs[0]]
    except ImportError:
        pass
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # its workers otherwise spin between runs and take the cores from the next variant's threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        runners["onnxruntime"] = lambda: session.run(None, {"x": tokens})[0]
    except ImportError:
        pass
    return runners


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    block = ResidualAttentionBlock(args.width, args.heads, 4.0, batch_first=True).eval().requires_grad_(False)
    x = torch.randn(args.batch, args.tokens, args.width)
    plain = FrozenBlock(block, "fp32", "plain")
    variants = {"torch-plain": plain}
    if onednn_layout_works():
        variants["torch-onednn"] = FrozenBlock(block, "fp32", "onednn", args.tokens)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    with tempfile.TemporaryDirectory(prefix="block-engines-") as tmp, torch.inference_mode():
        runners = {name: (lambda v=v: v(x)) for name, v in variants.items()}
        runners |= _exported_runners(plain, x, Path(tmp))
        runners["probe"] = lambda: a @ b.T
        reference = plain(x).numpy()
        differences = {name: float(np.abs(np.asarray(f()) - reference).max())
                       for name, f in runners.items() if name not in ("probe", "torch-plain")}
        samples: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, f in runners.items():
                f()  # untimed: the runtime run before may leave its worker threads spinning for a while
                start = time.perf_counter()
                f()
                samples[name].append(time.perf_counter() - start)
    best = {name: min(times) for name, times in samples.items()}
    probe = 2 * 2048**3 / best.pop("probe") / 1e9
    flops = block_flops(args.width, args.tokens, args.batch)
    record = host_info(torch.device("cpu")) | {
        "kind": "block_engines", "isa_env": {k: os.environ[k] for k in _ISA_VARIABLES if k in os.environ},
        "width": args.width, "tokens": args.tokens, "batch": args.batch, "rounds": args.rounds,
        "probe_gflops": round(probe, 1), "max_abs_diff_vs_plain": differences,
        "variants": {name: {"best_ms": round(seconds * 1000, 1),
                            "median_ms": round(float(np.median(samples[name])) * 1000, 1),
                            "fraction_of_probe": round(flops / seconds / 1e9 / probe, 3)}
                     for name, seconds in best.items()},
    }
    if "torch-onednn" in best:
        record["onednn_speedup"] = {name: round(seconds / best["torch-onednn"], 3)
                                    for name, seconds in best.items() if name != "torch-onednn"}
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    emit(run(args), args.jsonl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
