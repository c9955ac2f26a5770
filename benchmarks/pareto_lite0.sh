#!/usr/bin/env bash
# The Pareto chart of EfficientNet-Lite0 on the bundled clips (bikes, bigbuckbunny, carphone) at K=8:
# every manual design, an Optuna sweep, differentiable searches at three budgets, and the teacher,
# on one chart of MACs per frame against held-out agreement with the teacher.
#
#     bash benchmarks/pareto_lite0.sh            # RUNS=runs/pareto-lite0 STEPS=150 TRIALS=24 to change
#
# Writes $RUNS/pareto-top1/ and $RUNS/pareto-fidelity/ (pareto.csv, pareto.json with the hypervolume
# and its reference point, pareto.png, pareto.svg). Every stage resumes: run the script again after
# an interruption and finished designs, trials and searches are kept.
#
# Runtime (estimate, not measured; CPU only, 2 cores, 256x448 held-out frames): runs/bench-uniform
# took ~380 s for one design at 150 steps (~2 s per step at 192x320 crops plus ~1 min of evaluation).
#   baselines: 13 designs in default.yaml today (4 lowrank, 2 subsample, 4 gated, channel:2/4 and
#              depthwise, the last three on the stem only) x ~6.5 min, plus zero          ~ 1.5 h
#   sweep:     24 trials x (60 steps + val/test) ~3.5 min, 2 workers on 2 cores        ~ 1.5 h
#   searches:  3 x (150 supernet steps, every candidate running, + 150 fine-tuning)    ~ 1.5-2 h
#   pareto:    seconds
# In all about 4.5-5 hours on 2 CPU cores; proportionally less with more cores (THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."

DELTANAS=${DELTANAS:-deltanas}
RUNS=${RUNS:-runs/pareto-lite0}
STEPS=${STEPS:-150}              # training steps of every manual design and of every search's fine-tuning
TRIALS=${TRIALS:-24}             # Optuna trials (at least 20)
SWEEP_STEPS=${SWEEP_STEPS:-60}   # training steps per Optuna trial
THREADS=${THREADS:-2}
COMMON=(--teacher efficientnet_lite0 --videos bundled --keyframe 8 --eval-size 256x448 --max-frames 300
        --runs-dir "$RUNS" --seed 0 --no-progress)

echo "$(date -u +%F): $(uname -m), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# 1. Manual designs: every operator of search_spaces/default.yaml everywhere it fits, plus zero
#    (feature reuse) and the teacher, all trained with the same number of steps.
resume=()
[ -f "$RUNS/baselines/baselines.json" ] && resume=(--resume)
"$DELTANAS" baselines "${COMMON[@]}" --name baselines --steps "$STEPS" --threads "$THREADS" "${resume[@]}"

# 2. Optuna: per-block operator choices (top-1 up, MACs down), each trial trained briefly;
#    the study lives in $RUNS/sweep/study.journal (optuna-dashboard opens it as it is).
"$DELTANAS" sweep "${COMMON[@]}" --name sweep --mode arch --granularity block --metric top1 \
    --trials "$TRIALS" --steps "$SWEEP_STEPS" --workers 2 --threads 1 --sampler tpe

# 3. The differentiable search at three budgets per delta frame (fine-tuned as long as the baselines train).
for target in 0.1x 0.2x 0.35x; do
    name="search-${target/./p}"
    if [ -f "$RUNS/$name/summary.json" ]; then
        echo "$name: done"
        continue
    fi
    rm -rf "${RUNS:?}/$name"  # an interrupted search starts over (nothing else is in its folder)
    "$DELTANAS" search "${COMMON[@]}" --name "$name" --target "$target" --finetune-steps "$STEPS" \
        --threads "$THREADS"
done

# 4. One chart per metric: top-1 agreement (what users read) and delta fidelity (smooth).
runs=("$RUNS/baselines" "$RUNS/sweep" "$RUNS/search-0p1x" "$RUNS/search-0p2x" "$RUNS/search-0p35x")
for metric in top1 fidelity; do
    "$DELTANAS" pareto "${runs[@]}" --metric "$metric" --out "$RUNS/pareto-$metric" \
        --title "EfficientNet-Lite0, bundled clips, K=8, 256x448: $metric vs MACs per frame"
done
