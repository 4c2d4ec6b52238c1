#!/usr/bin/env bash
# One-shot GPU check for the CUDA features (docs/gpu.md): the CUDA tests, the optimizer-step benchmark and
# the training-loop benchmark (eager vs graphed trial vs a hand-written graphed loop), logs under $OUT.
#
#   OUT=/tmp/gpu-logs benchmarks/gpu_check.sh        # from the repository root, on a machine with CUDA
#
# Until it has passed on a real GPU, AdaBelief on CUDA defaults to torch's foreach kernels and
# fused=True warns that the Triton kernel is unverified, and model.compile: graph notes that whole-step
# capture is (docs/gpu.md). When every step passes, set CUDA_KERNEL_VERIFIED = True in
# adacli/optim/_fused.py and GRAPH_CAPTURE_VERIFIED = True in adacli/train/graph.py in the commit that
# records the figures.
#
# Sized for about 6 minutes on one H200 (each step has its own timeout, so one hang cannot eat the
# rest); every step runs even if an earlier one fails, and the exit status is the number of failed steps.
#
# On a machine without network access whose Python lacks some of adacli's dependencies (pydantic, and
# adabelief-pytorch for the parity tests), download their wheels beforehand into dist/gpu-wheels (git
# ignores dist/) and bring that folder along; the script installs them into /tmp/adacli-site first:
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 -d dist/gpu-wheels pydantic pydantic_core annotated-types \
#     typing-inspection adabelief-pytorch==0.2.1      # versions as in the environment adacli was tested in
set -u
OUT=${OUT:-gpu-check-logs}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
if ls dist/gpu-wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/adacli-site \
    dist/gpu-wheels/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/adacli-site
fi
failed=0

step() {  # step NAME TIMEOUT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$OUT/summary.txt"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $((SECONDS - t0)) s (log: $OUT/$name.log)" | tee -a "$OUT/summary.txt"
  tail -n 25 "$OUT/$name.log"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, 'device', torch.cuda.get_device_name())"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. the CUDA tests: capturable AdaBelief (parity, no host sync, graph replay under a scheduler), the
#    Triton kernel, whole-step graphs for trials (eager vs graphed, fallback note)
step pytest_cuda 240 "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider \
  tests/optim/test_adabelief.py tests/optim/test_adabelief_triton.py tests/train/test_graph_mode.py

# 2. optimizer.step() on the three large models: fused AdaBelief vs torch fused Adam (target <= 1.1x)
step bench_step 150 "$PY" -m adacli bench --device cuda --rounds 10 \
  --model resnet18 --model resnet50 --model vit_small_patch16_224 --json
"$PY" - "$OUT/bench_step.log" <<'PYEOF' 2>&1 | tee -a "$OUT/summary.txt"
import json, sys
text = open(sys.argv[1]).read()
if "{" not in text:
    sys.exit("   (no JSON: see the log)")
data = json.loads(text[text.index("{"):])
for row in data["rows"]:
    if row["optimizer"].startswith("adacli") or "Adam" in row["optimizer"]:
        print(f"   {row['model']:24s} {row['optimizer']:28s} {row['median_ms']:8.3f} ms  "
              f"x fused Adam {row['vs_torch_fused_adam']:.2f}")
PYEOF

# 3. the training loop: resnet18, 32 px, bf16, batch 128 -- eager trial, graphed trial, minimal eager and
#    minimal hand-written graphed loop in alternating rounds (targets: graphed >= 3x eager trial, >= 0.9x
#    the hand-written graphed loop)
step bench_loop 200 "$PY" benchmarks/bench_loop.py --device cuda --model resnet18 --image-size 32 \
  --dataset synthetic --batch-size 128 --precision bf16 --steps 200 --rounds 3
grep -E "steps/s|ratio|target" "$OUT/bench_loop.log" | sed 's/^/   /' >>"$OUT/summary.txt"

echo "failed steps: $failed" | tee -a "$OUT/summary.txt"
if [ "$failed" -eq 0 ]; then
  echo "all steps passed: set CUDA_KERNEL_VERIFIED (adacli/optim/_fused.py) and GRAPH_CAPTURE_VERIFIED (adacli/train/graph.py) to True (docs/gpu.md)" \
    | tee -a "$OUT/summary.txt"
fi
exit "$failed"
