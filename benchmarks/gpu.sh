#!/usr/bin/env bash
# The benchmarks at paper scale on one GPU, every installed backend in turn.
#
#   benchmarks/gpu.sh [--smoke] [--out DIR] [--budget SECONDS] [--backends "jax torch"]
#
# Paper scale (NsLoss paper: 224x224 inputs, preresnet10 and vgg19, B 32):
#   scale.py         NsLoss step against a standard step and against its floor
#                    (a standard step on (N+1)B rows), N = 5, B = 32, 224x224, on
#                    preresnet10, vgg19, MobileNetV2 and EfficientNetB0; the ATEX
#                    step on preresnet10;
#   memory.py        the GPU's peak memory of an NsLoss step in one pass and in
#                    chunks of one copy, preresnet10, B 32;
#   metrics_scale.py each paper metric's cost against one IG explanation,
#                    preresnet10, 224x224, 4 images, the paper's sample counts;
#   training.py      every regulariser's step on MNIST's small CNN, B 64.
# Each benchmark's output goes to DIR/<backend>-<name>.txt (default
# gpu_results/), and the lines that hold its ratios and tables to
# DIR/summary.md. Each backend gets the budget (default 480 s, --budget) and
# each benchmark a fixed share of it; one that fails or outlasts its share is
# noted and the script goes on; a backend that does not import is skipped and
# noted. benchmarks/RESULTS.md says what one run on an H200 took. `--smoke` runs every benchmark on tiny
# settings, on a CPU too (CI runs it: `make gpu-smoke`); its figures mean
# nothing. PYTHON names the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
OUT_DIR=gpu_results
BUDGET=480
BACKENDS="tensorflow jax torch"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT_DIR="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    --backends) BACKENDS="$2"; shift ;;
    *) echo "usage: $0 [--smoke] [--out DIR] [--budget SECONDS] [--backends LIST]" >&2; exit 2 ;;
  esac
  shift
done
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.md"
export TF_CPP_MIN_LOG_LEVEL=3 PYTHONUNBUFFERED=1
# Measured peaks, not JAX's default preallocation of most of the GPU.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FAILED=0

if [ "$SMOKE" = 1 ]; then
  SCALE_PAPER=(--models preresnet10,vgg19 --sizes 32 --perturbations 1 --batch-size 2 --steps 1 --width 8 --smoothgrad-samples 2 --no-atex)
  SCALE_ATEX=(--models preresnet10 --sizes 32 --perturbations 1 --batch-size 2 --steps 1 --width 8 --smoothgrad-samples 2)
  SCALE_APPS=(--models mobilenetv2,efficientnetb0 --sizes 32 --perturbations 1 --batch-size 2 --steps 1 --no-atex)
  MEMORY=(--size 32 --batch-size 2 --perturbations 1 --chunk-sizes none,1 --width 8 --steps 1)
  METRICS=(--smoke)
  TRAINING=(--batch-size 8 --num-perturbations 1 --steps 1 --repeats 1)
else
  SCALE_PAPER=(--models preresnet10,vgg19 --sizes 224 --perturbations 5 --batch-size 32 --steps 5 --no-atex)
  SCALE_ATEX=(--models preresnet10 --sizes 224 --perturbations 5 --batch-size 32 --steps 5 --no-floor)
  SCALE_APPS=(--models mobilenetv2,efficientnetb0 --sizes 224 --perturbations 5 --batch-size 32 --steps 5 --no-atex)
  MEMORY=(--size 224 --batch-size 32 --perturbations 5 --chunk-sizes none,1 --steps 3)
  METRICS=(--images 4)
  TRAINING=(--batch-size 64 --steps 10 --repeats 3)
fi

# name, share of the budget in percent, script, its arguments
PLAN=(
  "scale_paper 20 benchmarks/scale.py ${SCALE_PAPER[*]}"
  "memory 20 benchmarks/memory.py ${MEMORY[*]}"
  "metrics 20 benchmarks/metrics_scale.py ${METRICS[*]}"
  "scale_atex 10 benchmarks/scale.py ${SCALE_ATEX[*]}"
  "training 10 benchmarks/training.py ${TRAINING[*]}"
  "scale_apps 20 benchmarks/scale.py ${SCALE_APPS[*]}"
)

{
  echo "# GPU benchmarks$([ "$SMOKE" = 1 ] && echo ' (smoke: figures mean nothing)')"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo
} > "$SUMMARY"

available=()
for backend in $BACKENDS; do
  module=$backend
  if version=$(KERAS_BACKEND=$backend "$PY" -c "import $module, keras; print($module.__version__, 'keras', keras.__version__)" 2>/dev/null); then
    available+=("$backend")
    echo "- $backend: $version" >> "$SUMMARY"
  else
    echo "- $backend: not installed, skipped" >> "$SUMMARY"
  fi
done
[ ${#available[@]} -gt 0 ] || { echo "no backend imports" >&2; exit 1; }

for backend in "${available[@]}"; do
  for entry in "${PLAN[@]}"; do
    read -r name share script args <<< "$entry"
    limit=$((BUDGET * share / 100))
    [ "$SMOKE" = 1 ] && limit=600
    log="$OUT_DIR/$backend-$name.txt"
    echo "== $backend $name (limit ${limit}s): $script $args" | tee -a "$SUMMARY"
    start=$SECONDS
    # shellcheck disable=SC2086
    KERAS_BACKEND=$backend timeout "$limit" "$PY" "$script" $args > "$log" 2>&1
    rc=$?
    echo "   rc $rc in $((SECONDS - start)) s" | tee -a "$SUMMARY"
    if [ $rc -ne 0 ]; then
      FAILED=1
      echo '   ```' >> "$SUMMARY"
      tail -n 15 "$log" | sed 's/^/   /' >> "$SUMMARY"
      echo '   ```' >> "$SUMMARY"
    fi
    # The ratio lines (`name: ratio (what / what)`), device lines and tables.
    grep -E '^(backend|[a-z_0-9@]+: [0-9.]+ \(|  |configuration|metric \||[a-z_]+ \| )' "$log" \
      | grep -v -E 'Warning|warn|^  File ' | sed 's/^/    /' >> "$SUMMARY"
  done
done
cat "$SUMMARY"
exit $FAILED
