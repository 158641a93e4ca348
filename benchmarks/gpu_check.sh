#!/usr/bin/env bash
# GPU check of the fast inference path: ViT-L-14-336 at 518 px, random weights, images/s at batch
# 1/8/32 in bf16 (frozen weights prepared once in bf16; fp32 for the accuracy comparison), and the
# fraction of the chip's bf16 matmul peak measured in the same run; then one ViT-L block per
# variant (autocast vs prepared weights, sdpa vs matmul attention). int8 is CPU-only and is not run
# here. About 3-5 minutes on an H200.
#
# Usage, from the repository root:  OUT=/some/dir bash benchmarks/gpu_check.sh
# Writes JSON lines to $OUT/gpu.jsonl and the full log to $OUT/gpu.log.
set -u
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
LOG="$OUT/gpu.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package runs from the checkout, no install

echo "== machine"; nvidia-smi -L 2>/dev/null || echo "nvidia-smi not found"
PY=""
for cand in .venv/bin/python python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" 2>/dev/null; then PY="$cand"; break; fi
done
if [ -z "$PY" ]; then echo "No python with torch found; cannot run the GPU check."; exit 2; fi
echo "== python: $PY"
"$PY" - <<'PYEOF'
import importlib, sys
import torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("open_clip", "monai", "scipy", "safetensors", "ftfy", "regex"):
    try:
        mod = importlib.import_module(name)
        print("found", name, getattr(mod, "__version__", ""))
    except Exception as err:  # noqa: BLE001 - report any import failure
        print("MISSING", name, type(err).__name__, err)
PYEOF
if ! "$PY" -c "import open_clip, monai, scipy, safetensors" 2>/dev/null; then
    echo "== installing missing dependencies (needs network; fails fast offline)"
    timeout 120 "$PY" -m pip install -q --disable-pip-version-check open_clip_torch monai scipy safetensors \
        || echo "pip install failed"
fi

echo "== forward: batch 1/8/32, fast-fp32 and fast-bf16, matmul peak before/after"
timeout 270 "$PY" benchmarks/forward.py --device cuda --batch-sizes 1 8 32 --paths fast-fp32 fast-bf16 \
    --repeats 5 --warmup 2 --matmul-size 8192 --matmul-seconds 2 --jsonl "$OUT/gpu.jsonl"
echo "forward rc=$?"

echo "== forward with torch.compile: bf16, batch 32"
timeout 200 "$PY" benchmarks/forward.py --device cuda --batch-sizes 32 --paths fast-bf16 --compile \
    --repeats 5 --warmup 2 --matmul-size 8192 --matmul-seconds 1 --jsonl "$OUT/gpu.jsonl"
echo "compile rc=$?"

echo "== one ViT-L block per variant, batch 8 (autocast vs prepared bf16 weights, sdpa vs matmul attention)"
timeout 150 "$PY" benchmarks/block.py --device cuda --batch 8 --repeats 10 --matmul-size 8192 --matmul-seconds 1 \
    --variants reference autocast-bf16 prepared-fp32-sdpa prepared-bf16-sdpa prepared-bf16-matmul \
    --jsonl "$OUT/gpu.jsonl"
echo "block rc=$?"
