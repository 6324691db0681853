#!/usr/bin/env bash
# The one script a lent GPU machine runs: GPU tests, regression gate, the large-matrix targets,
# compile report, the performance model, kernel warm-up and export, then the full benchmark
# with figures (measured beside modeled). Under 8 minutes in all (a global deadline trims the
# later steps), every step logged, and a step that fails does not stop the others.
#
#   OUT=/some/folder bash perf/device.sh        (from the repository root)
#
# What comes back (at most 8 files, all in $OUT):
#   device.log                       every step's output, with its exit status and timing
#   bench-<gpu>-<stamp>.json (two)   the benchmark rows (tritonsqrt bench): the large-matrix
#                                    targets first (B=32 n=256, B=16 n=1024, forward+backward,
#                                    against the torch reference, eigh+autograd, MPA-Lya), then all
#   time-vs-n-<gpu>.png, error-vs-time-<gpu>-zca-b64.png   its figures (if matplotlib is there)
#   perfcheck-<gpu>.json             the gate's measurements and verdicts, or, on a GPU with no
#   <gpu>.json                       baseline yet, a recorded baseline to commit to perf/baselines/
#   warmup-export.json               the tuned kernel configurations
set -u -o pipefail
export PYTHONUNBUFFERED=1

OUT=${OUT:?set OUT to the folder whose files come back}
PY=${PYTHON:-python}
DEADLINE_S=${DEADLINE_S:-450}  # 7.5 minutes of steps: leaves room for start-up and copying back
# The GPU tests run the kernels on the GPU, not in the interpreter (tests/conftest.py only sets
# TRITON_INTERPRET when it is unset).
TESTS_INTERPRET=${TESTS_INTERPRET:-0}
# Sizes to warm up; the flag spelling is tritonsqrt warmup's (see its --help in the log).
WARMUP_ARGS=${WARMUP_ARGS:---sizes 32,64,128,256,512,1024 --dtypes float32,bfloat16 --backward --export $OUT/warmup-export.json}

mkdir -p "$OUT"
LOG="$OUT/device.log"
: >"$LOG"
START=$SECONDS
FAILED=()

remaining() { echo $((DEADLINE_S - (SECONDS - START))); }

# step NAME LIMIT_S COMMAND...: run with a time limit (cut to the deadline), log, record failure.
step() {
  local name=$1 limit=$2
  shift 2
  local left
  left=$(remaining)
  if [ "$left" -lt 15 ]; then
    echo "=== $name: skipped, deadline reached" | tee -a "$LOG"
    FAILED+=("$name(skipped)")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (limit ${limit}s, at $((SECONDS - START))s): $*" | tee -a "$LOG"
  # SIGINT first: pytest prints its summary and bench keeps the rows it has.
  timeout --signal=INT --kill-after=15 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "=== $name: exit $rc at $((SECONDS - START))s" | tee -a "$LOG"
  [ "$rc" -eq 0 ] || FAILED+=("$name($rc)")
}

step environment 30 bash -c "nvidia-smi || true; $PY -c 'import torch, triton, sys; print(sys.version); print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.get_device_name(0)); print(\"triton\", triton.__version__)'"
# Nothing outside the machine can be reached: no build isolation (setuptools is on the image).
# Should the install fail, the checkout still imports from the repository root.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step install 90 $PY -m pip install -q -e . --no-deps --no-build-isolation
step info 30 $PY -m tritonsqrt.cli info
KIND=$($PY -c "from tritonsqrt.perf.records import device_kind; print(device_kind())" 2>>"$LOG" || echo unknown-gpu)
echo "device kind: $KIND" | tee -a "$LOG"

step tests 100 env TRITON_INTERPRET="$TESTS_INTERPRET" $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py

# The gate: compare against this GPU's baseline, or record one to commit if there is none.
if $PY -c "import sys; from tritonsqrt.perf.records import BASELINE_DIR; sys.exit(not (BASELINE_DIR / '$KIND.json').is_file())"; then
  step perfcheck 90 $PY -m tritonsqrt.cli perfcheck --json "$OUT/perfcheck-$KIND.json"
else
  echo "no perf/baselines/$KIND.json: recording one to $OUT/$KIND.json" | tee -a "$LOG"
  step perfcheck-record 90 $PY -m tritonsqrt.cli perfcheck --update --only timing --noise-runs 3 --baseline "$OUT/$KIND.json"
  step perfcheck-costs 60 $PY -m tritonsqrt.cli perfcheck --only costs --json "$OUT/perfcheck-$KIND.json"
fi

# The performance model of this GPU's arch (docs/perf-model.md), kept outside $OUT (8 files come
# back): every bench step below gets --model, so its rows carry the modeled time beside the
# measured one with the model's error, and the log shows the error per case (calibration).
MODEL_JSON="$(mktemp -d)/model.json"
ARCH=$($PY -c "import torch; major, minor = torch.cuda.get_device_capability(); print(f'sm_{major}{minor}')" 2>>"$LOG" || echo sm_90)
case "$ARCH" in sm_80|sm_90) ;; *) echo "no model for $ARCH: using sm_90's" | tee -a "$LOG"; ARCH=sm_90 ;; esac
step model 120 $PY -m tritonsqrt.cli compile-report --model --arch "$ARCH" --json "$MODEL_JSON"
MODEL_ARGS=()
[ -s "$MODEL_JSON" ] && MODEL_ARGS=(--model "$MODEL_JSON")

# The tiled kernels' targets (issue 4): >= 2x the torch reference of the same method, >= 5x
# eigh with autograd. Warmed up by the bench itself (it times after warm-up runs).
step large 90 $PY -m tritonsqrt.cli bench --cases covpool large-b16-n1024 --modes forward+backward \
  --providers 'tritonsqrt:scaled_ns' 'torch:scaled_ns' eigh-autograd official:mpa-lya --no-graphs --out "$OUT" \
  ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"}

# The fused kernels' targets (tensor-core issue): B=256 n=64, B=64 n=48, B=1024 n=32 forward+backward
# at the GPU default precision (tf32x3 from n = 16), measured beside modeled; then the accuracy of
# the tensor cores themselves (the README's tf32x3 table is emulated on the CPU): the default and
# explicit tf32x3 over the wide check's sizes and spectra, on the kernels.
step fused 60 $PY -m tritonsqrt.cli bench --cases small-b256-n64 sovit small-b1024-n32 zca-b64 --modes forward+backward \
  --providers 'tritonsqrt:auto' 'tritonsqrt:scaled_ns' eigh-autograd --no-graphs ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"}
step accuracy-tf32x3 60 $PY -m tritonsqrt.cli check --methods auto,scaled_ns --precision tf32x3 --n 2 8 16 32 48 64 96 256 \
  --seeds 3 --spectra logspaced,clusters --margin 1.5 --where

# Every kernel and every tiled config (the table goes to the log).
step compile-report 60 $PY -m tritonsqrt.cli compile-report --arch sm_90 --n 16,33,64,130,4096 --dtype float32
step warmup-help 15 $PY -m tritonsqrt.cli warmup --help
# shellcheck disable=SC2086  # WARMUP_ARGS is a list of words
step warmup 150 $PY -m tritonsqrt.cli warmup $WARMUP_ARGS

# The benchmark: everything but torch.compile first; compiled providers on two cases only
# (each compile takes tens of seconds), in the time left.
PLOT=--plot
$PY -c "import matplotlib" 2>/dev/null || { PLOT=""; echo "matplotlib missing: no figures (draw them later with --plot-from)" | tee -a "$LOG"; }
BENCH_LIMIT=$(( $(remaining) - 40 ))
[ "$BENCH_LIMIT" -ge 30 ] || BENCH_LIMIT=30
step bench $(( BENCH_LIMIT + 30 )) $PY -m tritonsqrt.cli bench $PLOT --plot-case zca-b64 --out "$OUT" \
  --compile-cases zca-b64 covpool --time-limit "$BENCH_LIMIT" ${MODEL_ARGS[@]+"${MODEL_ARGS[@]}"}

echo "=== done in $((SECONDS - START))s; files in $OUT:" | tee -a "$LOG"
ls -l "$OUT" | tee -a "$LOG"
FILES=$(find "$OUT" -type f | wc -l)
[ "$FILES" -le 8 ] || echo "WARNING: $FILES files in $OUT, only 8 come back" | tee -a "$LOG"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED steps: ${FAILED[*]}" | tee -a "$LOG"
  exit 1
fi
echo "all steps passed" | tee -a "$LOG"
