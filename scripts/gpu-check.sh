#!/usr/bin/env bash
# On a CUDA machine: (1) the Hugging Face parity checks in bf16 on the CUDA kernel path (one
# rank per GPU, up to 8, NCCL), (2) a ~1B-parameter Llama at world 1 on long packed sequences:
# tokens/s and MFU under FlexSP vs the same model in plain transformers with its own
# flash/SDPA attention, (3) the real-execution benchmark at world 1 (degree 1): a small Llama on
# a long-tailed corpus, profiled on the GPU, the runtime's tokens/s against plain transformers
# and the cost model's estimate error per micro-batch. Output also goes to $OUT (default
# out/gpu-check).
#   scripts/gpu-check.sh                      # everything
#   BENCH_FLAGS="--tokens 32768 --longest 16384 --activation-checkpointing" scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - <<'PYCHECK'
import sys
import torch, transformers
if not torch.cuda.is_available():
    sys.exit("gpu-check: no CUDA device (torch.cuda.is_available() is False)")
print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
      f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
PYCHECK

# The largest power of two of GPUs up to 8: plans need power-of-two degrees.
GPUS=$("$PY" -c 'import torch; n = min(torch.cuda.device_count(), 8); print(1 << (n.bit_length() - 1))')

echo "== parity: bf16, CUDA kernels, world $GPUS"
"$PY" -m torch.distributed.run --standalone --nproc-per-node "$GPUS" \
  scripts/gpu_check.py parity | tee "$OUT/parity.txt"

echo "== throughput: ~1B Llama, world 1"
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 \
  scripts/gpu_check.py bench ${BENCH_FLAGS:-} | tee "$OUT/bench.txt"

echo "== real execution: world 1 (degree 1), estimate error, runtime vs plain transformers"
FLEXSP_BIN=${FLEXSP_BIN:-$PWD/.build/release/flexsp} "$PY" benchmarks/runtime/real_execution.py \
  --world 1 --versus-transformers --out "$OUT/real-execution" | tee "$OUT/real-execution.txt"
