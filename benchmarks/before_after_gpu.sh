#!/usr/bin/env bash
# The training step of an earlier commit against this checkout, on one GPU machine in one call.
#
#   bash benchmarks/before_after_gpu.sh prepare 16cf57b   # here: bench_old/ = that commit, .whl/ = wheels the
#                                                         # GPU image lacks (ml_collections, tensorboardX)
#   OUT=/tmp/out bash benchmarks/before_after_gpu.sh run  # there (device tool: carry bench_old and .whl)
#
# "run": the main command for 3 epochs, then benchmarks.train_step for digits_events and dvs_gesture after /
# before / after, then benchmarks.gpu_check; log in $OUT/run.log. Both folders are git-ignored locally
# (.git/info/exclude), so nothing of them is committed.
set -u
case "${1:-}" in
prepare)
  rm -rf bench_old && mkdir bench_old
  git archive "${2:?commit}" spikejax configs benchmarks experiments | tar -x -C bench_old
  mkdir -p .whl && python -m pip download -q --no-deps -d .whl ml_collections tensorboardX
  grep -qx "bench_old/" .git/info/exclude || printf 'bench_old/\n.whl/\n' >> .git/info/exclude
  ;;
run)
  OUT="${OUT:-/tmp/out}"; mkdir -p "$OUT"
  export PYTHONUNBUFFERED=1 SPIKEJAX_DATA_DIR=/tmp/spikejax-data
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl 2>&1 | tail -2
  export PYTHONPATH="/tmp/site:$PWD"
  part() { local name=$1 limit=$2; shift 2; echo "## $name ($(date -u +%T), limit ${limit} s)"
           timeout -k 5 "$limit" "$@" 2>&1 | grep -v "All log messages before absl"; echo "## $name exit ${PIPESTATUS[0]}"; }
  old_step="cd bench_old && PYTHONPATH=/tmp/site:\$PWD python3 benchmarks/train_step.py"
  old_step+=" --configs=digits_events,dvs_gesture --reps=20 --pipeline_seconds=1 --data_dir=$SPIKEJAX_DATA_DIR"
  {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c 'import jax, flax, optax, sys; print("python", sys.version.split()[0], "jax", jax.__version__,
"flax", flax.__version__, "optax", optax.__version__, jax.devices())'
    part train_cli 150 python3 -m experiments.train --workdir=/tmp/run-gpu --epochs=3
    part step_new 100 python3 -m benchmarks.train_step --configs=digits_events,dvs_gesture --reps=20 --pipeline_seconds=1
    part step_old 100 bash -c "$old_step"
    part step_new_again 60 python3 -m benchmarks.train_step --configs=digits_events,dvs_gesture --reps=20 --pipeline_seconds=1
    part gpu_check 170 python3 -m benchmarks.gpu_check "$OUT/gpu_check.json"
  } 2>&1 | tee "$OUT/run.log"
  ;;
*) echo "usage: $0 prepare COMMIT | run" >&2; exit 2 ;;
esac
