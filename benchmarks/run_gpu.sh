#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md in one run (about 12 minutes on one H100/H200), from the repository root:
#
#   OUT=/tmp/gpu bash benchmarks/run_gpu.sh
#   OUT=/tmp/gpu PARTS=shapes,gpu_check LIMIT_gpu_check=100 bash benchmarks/run_gpu.sh   # these parts, in
#                                                                       # this order, gpu_check's limit 100 s
#
# Optional: .whl/ with wheels the machine lacks (flax >= 0.12, ml_collections), installed with --no-deps
# into /tmp/site; .anchors/ with a copy of the shared anchor script (bench_anchors.py, run_device.sh) for
# the DVS Gesture network side by side with the plain-JAX scan and the conv floor.
# Each part has its own time limit, so a failure in one leaves the others' figures.
set -u
OUT="${OUT:-/tmp/spikejax-gpu}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY="${PY:-python3}"
if ls .whl/*.whl >/dev/null 2>&1; then
  wheels=(.whl/ml_collections-*.whl)
  if ! "$PY" -c 'import flax, sys; sys.exit(tuple(map(int, flax.__version__.split(".")[:2])) < (0, 12))' 2>/dev/null; then
    wheels+=(.whl/flax-*.whl)
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${wheels[@]}"
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
PARTS="${PARTS:-gpu_check,learnable,recurrent,lif_dense,train_step,anchors_dvsg,memory_vs_T,shapes,pallas_blocks,conv_replicas,replicas}"
part() {  # part NAME SECONDS command...   ($LIMIT_NAME, when set, replaces SECONDS)
  local name=$1 limit=$2; shift 2
  local override="LIMIT_$name"; limit="${!override:-$limit}"
  echo "## $name ($(date -u +%T), limit ${limit} s)"
  timeout -k 5 "$limit" "$@" 2>&1 | grep -v "^WARNING: All log messages before absl" | tee -a "$OUT/all.log"
  echo "## $name exit ${PIPESTATUS[0]}"
}
run_part() {
  case "$1" in
    gpu_check) part gpu_check 200 "$PY" -m benchmarks.gpu_check "$OUT/gpu_check.json" --timing ;;
    learnable) part learnable 90 "$PY" -m benchmarks.learnable --implementation pallas --reps 20 ;;
    recurrent) part recurrent 90 "$PY" -m benchmarks.recurrent --reps 10 ;;
    lif_dense) part lif_dense 150 "$PY" -m benchmarks.lif_dense --n 16384 --batch 16 --steps 500 --reps 10 \
      --variants floor_bf16,pallas_bf16,fused_bf16,floor_f32,pallas_f32,fused_f32 --out "$OUT/lif_dense.json" ;;
    train_step) part train_step 120 bash -c "$PY -m benchmarks.train_step --configs=dvs_gesture --reps=20 --pipeline_seconds=5 &&
      $PY -m benchmarks.train_step --configs=dvs_gesture --reps=20 --pipeline_seconds=1 --implementation=fused" ;;
    anchors_dvsg)
      if [ -f .anchors/bench_anchors.py ]; then
        part anchors_dvsg 150 env OUT="$OUT" NET=dvsg TOTAL_S=140 WHEELS=/nonexistent \
          VARIANTS=dvsg_floor_bf16,dvsg_jax_bf16,dvsg_spikejax_bf16,dvsg_floor_f32,dvsg_spikejax_f32 \
          bash .anchors/run_device.sh
      fi ;;
    memory_vs_T) part memory_vs_T 70 "$PY" -m benchmarks.lif_dense --memory-vs-T --n 16384 --batch 16 \
      --memory-steps 100,250,500,1000,2000 --variants floor_bf16,pallas_bf16,fused_bf16 --out "$OUT/memory_vs_T.json" ;;
    # issue 26: the shape sweep through the Pallas path, fixed and learnable parameters, n = 1024 first
    shapes) part shapes 200 "$PY" -m benchmarks.shapes --T 50,100,250,500,1000 --n 1024,256,128 --B 16,64 \
      --budget 1 --recompute-chunk 0 --out "$OUT/shapes.json" --plot "$OUT/shapes.png" ;;
    # issue 26: block settings of the Pallas pair where the default grid has fewer programs than multiprocessors
    pallas_blocks) part pallas_blocks 150 "$PY" -m benchmarks.gpu_check "$OUT/pallas_blocks.json" --sweep \
      --sweep-shape=1000,16,1024 --sweep-dtype=float32 ;;
    # issue 22, item 11: the forms of R conv replicas; the DVS Gesture step with R replicas, after and before
    conv_replicas) part conv_replicas 90 "$PY" -m benchmarks.conv_replicas --replicas 1,4,8 --reps 10 \
      --out "$OUT/conv_replicas.json" ;;
    replicas) part replicas 180 bash -c "$PY -m benchmarks.replicas --dataset=dvs_gesture --replicas=1,8 --sequential=no --reps=10 &&
      $PY -m benchmarks.replicas --dataset=dvs_gesture --replicas=8 --sequential=no --reps=10 --conv_form=blockdiag &&
      $PY -m benchmarks.replicas --dataset=dvs_gesture --replicas=1,8 --sequential=no --reps=10 --conv_form=lax" ;;
    *) echo "unknown part $1" ;;
  esac
}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  "$PY" -c 'import jax, jaxlib, flax, optax, sys; print("python", sys.version.split()[0], "jax", jax.__version__,
"jaxlib", jaxlib.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
} 2>&1 | tee -a "$OUT/all.log"
for name in ${PARTS//,/ }; do
  run_part "$name"
done
