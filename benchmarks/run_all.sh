#!/usr/bin/env bash
# The figures of BENCHMARKS.md, in one sequential run (nothing else should use the CPU meanwhile).
# Under nine and a half hours on 2 cores. Results land in benchmarks/results/, run folders in runs/bench-*.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# The moving-camera searches of step 7 against the manual design next above each budget, paired bootstrap
# (deltanas compare); $1: the results file's infix, then compare's own options
compare_moving() {
    local infix=$1 design budget; shift
    for pair in "gated:p0.1(full) 0.1x" "gated:p0.25(full) 0.2x" "gated:t1(full) 0.35x"; do
        read -r design budget <<< "$pair"
        { echo "\$ deltanas compare ${*:+$* }\"uniform:$design\" runs/bench-search-v7/search-$budget"
          $PY -m deltanas compare "$@" "uniform:$design" runs/bench-search-v7/search-$budget --no-progress; } \
            > benchmarks/results/compare_moving_${infix}$budget.txt
    done
}
DN=${DN:-.venv/bin/deltanas}

# 1. a search with its uniform top-p and threshold candidates at three budgets, bundled clips: its runs are
#    the searched points of the Pareto front (step 2; the tables stay in the run folder)
$PY benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes hard --steps 40 --finetune-steps 40 --uniform \
    --runs-dir runs/bench-search-v3 --out runs/bench-search-v3/search_budgets.md
$PY benchmarks/search_budgets.py --targets 0.35x --modes soft --steps 40 --finetune-steps 40 --uniform \
    --runs-dir runs/bench-search-v3 --out runs/bench-search-v3/search_budgets_soft.md
# 2. every manual design (80 steps each, skip-convolution family included), an Optuna sweep, the Pareto front
$DN baselines --videos bundled --keyframe 8 --runs-dir runs/pareto-lite0 --name baselines --steps 80 --skipconv \
    --seed 0 --no-progress
$DN sweep --trials 20 --steps 5 --granularity block --name sweep --runs-dir runs/pareto-lite0 --no-progress
for metric in top1 fidelity; do
    $DN pareto runs/pareto-lite0/baselines runs/pareto-lite0/sweep runs/bench-search-v3 --metric $metric \
        --out benchmarks/results/pareto-$metric
done
# 3. per-layer allocation of skip-convolutions, adaptive key frames
$PY benchmarks/allocation.py --out benchmarks/results/allocation.md
$PY benchmarks/keyframes.py --videos bundled --out benchmarks/results/keyframes_bundled.md
if [ -d ../shared/video ]; then
    $PY benchmarks/keyframes.py --videos shared --out benchmarks/results/keyframes_static.md
fi
# 4. running reference (DeltaCNN-style gates): designs on both regimes, calibrated threshold profiles, the search
#    per frame on moving cameras, footage the static calibration never saw (BENCHMARKS.md, running reference)
RUNNING="gated:p0.25:run(full) gated:p0.35:run(full) gated:w0.05:run(full) gated:w0.1:run(full) gated:w0.2:run(full)"
$PY benchmarks/allocation.py --videos bundled --designs $RUNNING --out benchmarks/results/running_bundled.md
$PY benchmarks/search_budgets.py --targets 0.5x 0.667x --per-frame --modes soft --steps 40 --finetune-steps 40 \
    --uniform "gated:w0.05:run(full)" --runs-dir runs/bench-moving-v4 \
    --out benchmarks/results/search_moving_per_frame.md
if [ -d ../shared/video ]; then
    EARLY='_conv_stem|_blocks\.[0-3]\.'
    $PY benchmarks/allocation.py --videos shared --designs "gated:p0.25:run(full)" "gated:p0.35:run(full)" \
        "gated:t1:run(full)" "gated:t2:run(full)" "gated:a0.05:run(full)" "gated:a0.1:run(full)" \
        "gated:a0.15:run(full)" "gated:w0.05:run(full)" "gated:w0.08:run(full)" "gated:a0.04:run(full)" \
        "gated:w0.03:run(full)" "gated:w0.04:run(full)" \
        'gated:w0.05:run(full);_blocks\.1[0-5]\.|_conv_head=gated:w0.02:run(full)' \
        "gated:w0.05:run(full);$EARLY=gated:w0.02:run(full)" \
        'gated:w0.05:run(full);_depthwise_conv=gated:w0.015:run(full)' \
        'gated:w0.05:run(full);_project_conv=gated:w0.02:run(full)' \
        "gated:w0.08:run(full);$EARLY=gated:w0.02:run(full)" "gated:w0.06:run(full);$EARLY=gated:w0.025:run(full)" \
        'gated:w0.08:run(full);_conv_stem|_blocks\.[0-5]\.=gated:w0.03:run(full);_depthwise_conv=gated:w0.02:run(full)' \
        --out benchmarks/results/running_static.md
    $PY benchmarks/threshold_profiles.py --videos shared --per-frame 0.4 --gates w:0 w:0.25 w:0.5 w:1 \
        --out benchmarks/results/threshold_profiles_static.md
    $PY benchmarks/transfer_static.py
fi
# 5. the search on every static clip at 2.5x per frame (selection on validation frames, topped up from the
#    training frames where they hold too few groups)
if [ -d ../shared/video ]; then
    $PY benchmarks/search_budgets.py --targets 0.39x --per-frame --modes soft --steps 40 --finetune-steps 40 \
        --videos shared --uniform "gated:w0.04:run(full)" --runs-dir runs/bench-static-v5 \
        --out benchmarks/results/search_static.md
fi
# 6. the tight budgets: every calibrated candidate at 0.1x and 0.2x on the bundled clips, on the selection
#    and the held-out frames (BENCHMARKS.md, selection frames and metric)
for DELTA in 0.1 0.2; do
    $PY benchmarks/threshold_profiles.py --videos bundled --delta $DELTA --gates top-p:0 t:0 t:-0.5 w:0.25 w:0 p:0 \
        --out benchmarks/results/threshold_profiles_bundled_${DELTA}x.md
done
# 7. the search with depthwise layers passing every change (BENCHMARKS.md, depthwise layers): three budgets on
#    the bundled clips, the default search (timed), and the static cameras at 0.1x and 0.2x
$PY benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes soft --steps 40 --finetune-steps 40 \
    --uniform "gated:p0.1(full)" "gated:p0.25(full)" "gated:p0.35(full)" "gated:t1(full)" "gated:w0.1:run(full)" \
    --runs-dir runs/bench-search-v7 --out benchmarks/results/search_moving.md
compare_moving ""
/usr/bin/time -v $PY -m deltanas search --name default-v7 --no-progress 2> runs/default-v7.time
if [ -d ../shared/video ]; then
    $PY benchmarks/search_budgets.py --targets 0.1x 0.2x --modes soft --steps 40 --finetune-steps 40 --videos shared \
        --uniform "gated:p0.1(full)" "gated:p0.25(full)" --runs-dir runs/bench-static-v7 \
        --out benchmarks/results/search_static_budgets.md
    { echo "\$ deltanas compare \"uniform:gated:p0.1(full)\" runs/bench-static-v7/search-0.1x --videos shared"
      $PY -m deltanas compare "uniform:gated:p0.1(full)" runs/bench-static-v7/search-0.1x --videos shared \
          --no-progress; } > benchmarks/results/compare_static_0.1x.txt
fi
# 8. every key-frame phase (BENCHMARKS.md, every key-frame phase): the searches of step 7 and the manual designs
#    around them, each evaluated with the grid of key frames at each of the K offsets, and the paired bootstraps
$PY benchmarks/keyframe_phases.py runs/bench-search-v7/search-0.1x "gated:p0.1(full)" --spread \
    --out benchmarks/results/keyframe_phases_bundled_0.1x_spread.md
$PY benchmarks/keyframe_phases.py runs/bench-search-v7/search-0.1x runs/bench-search-v7/search-0.2x \
    runs/bench-search-v7/search-0.35x zero "gated:p0.1(full)" "gated:t3(full)" "gated:p0.15(full)" "gated:t2(full)" \
    "gated:p0.25(full)" "gated:p0.35(full)" "gated:t1(full)" --out benchmarks/results/keyframe_phases_bundled.md
B=runs/pareto-lite0/baselines  # the trained students of step 2
$PY benchmarks/keyframe_phases.py $B/uniform-lowrank-0.0625 $B/uniform-subsample_lowrank-0.25 $B/uniform-lowrank-0.125 \
    "subsample(full)" $B/uniform-lowrank-0.25 --out benchmarks/results/keyframe_phases_bundled_students.md
compare_moving phases_ --phases 8
# 9. time on the sparse engine (BENCHMARKS.md, current state): the static-camera operating point and the
#    running gates against the dense teacher in PyTorch, ONNX Runtime and OpenVINO, at K = 8, 16, 32
if [ -d ../shared/video ]; then
    export DELTANAS_EXTRA_VIDEO=../shared/video
    $PY benchmarks/engine_speed.py --videos shared --out benchmarks/results/engine_static.md
    $PY benchmarks/engine_speed.py --videos ../shared/video/one-by-one-person-detection.mp4 \
        ../shared/video/car-detection.mp4 ../shared/video/bottle-detection.mp4 --threads 2 \
        --out benchmarks/results/engine_surveillance.md
fi
$PY benchmarks/engine_speed.py --videos bundled --keyframes 8 16 --out benchmarks/results/engine_moving.md
# 10. online streams (BENCHMARKS.md, online streams): the controller against fixed (interval, threshold) pairs
#     calibrated on other clips, the teacher alone and key-frame reuse, on streams cut from both regimes
if [ -d ../shared/video ]; then
    $PY benchmarks/online_streams.py --targets 0.85 0.7 --macs-controller --out benchmarks/results/online_streams.md
fi
# 11. latency budgets (deltanas profile, search --target-ms): profile this machine at 2 threads on the static clips,
#     search at three targets in ms per frame (shares of the profiled key frame), time each derived model on
#     the held-out frames against the latency model's prediction
$PY benchmarks/latency_budget.py --threads 2 --targets 0.3x 0.4x 0.5x --quick --runs-dir runs/bench-latency \
    --out benchmarks/results/latency_budget.json
# 12. learned per-layer gates (BENCHMARKS.md, learned gates): against the calibrated stride profile at 0.2x on both
#     regimes, then at three budgets against the per-stage gate sweep (>= 5x the compute) and the manual designs
$PY benchmarks/learned_vs_profile.py --videos bundled --target 0.2x --gate-steps 60 \
    --out benchmarks/results/learned_vs_profile_moving_0.2x.md
$PY benchmarks/learned_gates.py --videos bundled --targets 0.1 0.2 0.35 --out benchmarks/results/learned_gates_moving.md
if [ -d ../shared/video ]; then
    $PY benchmarks/learned_vs_profile.py --videos shared --target 0.2x --gate-steps 60 \
        --out benchmarks/results/learned_vs_profile_static_0.2x.md
    $PY benchmarks/learned_gates.py --videos shared --targets 0.1 0.2 0.35 --out benchmarks/results/learned_gates_static.md
fi
# 13. condensed footage (BENCHMARKS.md, condensed footage): design rankings and the end-to-end calibration on 8
#     distilled / random / k-center groups against the full footage, static and moving apart
if [ -d ../shared/video ]; then
    $PY benchmarks/condense_rankings.py --regimes static:shared moving:bundled --size 128x224 --max-frames 200 \
        --groups 8 --steps 200 --test-groups 3 --profiles 0 --fixed "uniform:gated:w0.02:run(full)" \
        "uniform:gated:w0.03:run(full)" "uniform:gated:w0.05:run(full)" "uniform:gated:w0.07:run(full)" \
        "uniform:gated:w0.1:run(full)" "uniform:gated:t0.5(full)" "uniform:gated:t0.7(full)" "uniform:gated:t1(full)" \
        "uniform:gated:t2(full)" --manual zero lowrank:0.5 lowrank:0.25 "subsample(full)" "gated:p0.25(full)" \
        "gated:p0.1(full)" "gated:p0.05(full)" --threads 2 \
        --out benchmarks/results/condense_rankings.md --json benchmarks/results/condense_rankings.json
fi
