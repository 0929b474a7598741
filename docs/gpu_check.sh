#!/usr/bin/env bash
# The GPU figures in docs/benchmarks.md, measured in one call on a lent GPU machine that has JAX but no TensorFlow
# or Keras: Keras and its missing dependencies travel as wheels in .whl/, the competition zip in .devdata/ (both
# git-ignored). Every step is time-boxed and runs whatever the one before did; results land in $OUT (default out/).
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       -d .whl keras==3.15.1 namex==0.1.0 optree==0.20.0
#   cp ../shared/data/digit-recognizer.zip .devdata/ && bash docs/gpu_check.sh [settings folds preset warm leaderboard]
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TERM=dumb COLUMNS=160
exec > >(tee "$OUT/log.txt") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, keras; print('jax', jax.__version__, 'keras', keras.__version__, jax.devices())"
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 >"$OUT/smi.csv" 2>/dev/null &
step() { echo "=== $(date +%T) $*"; local t=$SECONDS; timeout "$@"; echo "=== exit $? after $((SECONDS - t)) s"; }

step 60 python3 -m kit download --from-zip .devdata/digit-recognizer.zip
for phase in ${@:-settings folds}; do
    case $phase in
    settings) # kit's GPU configuration (model.fit, 16 steps per call, mixed float16) against the alternatives
        step 150 python3 benchmarks/bench_settings.py --variants kit,fit1,batches,bfloat16,float32 --rounds 4 ;;
    folds) # the default 5-fold run one fold at a time, then with all five sharing the GPU, each with no compile cache
        rm -rf ~/.cache/kit/jax
        step 200 python3 -m kit train --folds 5 --run-id gpu-5f-jobs1 --jobs 1
        rm -rf ~/.cache/kit/jax
        step 170 python3 -m kit train --folds 5 --run-id gpu-5f-jobs5 --jobs 5 ;;
    preset) # the former GPU preset kitnet-gpu (5 folds x 3 repeats), --jobs as kit chooses, compile cache cold
        rm -rf ~/.cache/kit/jax
        step 250 python3 -m kit train --folds 5 --repeats 3 --run-id gpu-5x3 ;;
    leaderboard) # the GPU leaderboard preset (kitnet + deotte + m5 on 5 folds, blended), compile cache cold; budget 8 min
        rm -rf ~/.cache/kit/jax
        step 540 python3 -m kit train --model leaderboard --run-id gpu-leaderboard ;;
    warm) # the default 5-fold run, --jobs as kit chooses, with the compilation cache the runs before filled
        step 110 python3 -m kit train --folds 5 --run-id gpu-5f-warm ;;
    esac
done
kill %1 2>/dev/null
tar czf "$OUT/runs.tar.gz" runs/*/config.json runs/*/metrics.json runs/*/fold*/metrics.json runs/*/fold*/history.json \
    runs/*/fold*.log 2>/dev/null
ls -la runs/*/ 2>/dev/null | head -40
