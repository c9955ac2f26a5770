#!/usr/bin/env bash
# The figures of BENCHMARKS.md, in one sequential run (nothing else should use the CPU meanwhile).
# About nine and a half hours on 2 cores. Results land in benchmarks/results/, run folders in runs/bench-*.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

# The searches of step 10 against the manual design next above each budget, paired bootstrap (deltanas compare);
# $1: the results file's infix, then compare's own options
compare_v7() {
    local infix=$1 design budget; shift
    for pair in "gated:p0.1(full) 0.1x" "gated:p0.25(full) 0.2x" "gated:t1(full) 0.35x"; do
        read -r design budget <<< "$pair"
        { echo "\$ deltanas compare ${*:+$* }\"uniform:$design\" runs/bench-search-v7/search-$budget"
          $PY -m deltanas compare "$@" "uniform:$design" runs/bench-search-v7/search-$budget --no-progress; } \
            > benchmarks/results/compare_v7_${infix}$budget.txt
    done
}
DN=${DN:-.venv/bin/deltanas}
STATIC="../shared/video/one-by-one-person-detection.mp4 ../shared/video/car-detection.mp4"

# 1. uniform designs on the bundled clips, 80 updates each (= the search's 40 + 40 below)
$PY benchmarks/uniform_designs.py --steps 80 --designs full zero lowrank:0.5 lowrank:0.25 "gated:p0.25(full)" \
    --out benchmarks/results/uniform_designs.md
# 2. searches at three budgets on the bundled clips (--hard: never above the target)
$PY benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes hard --steps 40 --finetune-steps 40 --uniform \
    --out benchmarks/results/search_budgets.md
# 3. static cameras: a search against the skip-convolution and student baselines on the same footage
if [ -f ../shared/video/car-detection.mp4 ]; then
    $PY benchmarks/search_budgets.py --targets 0.3x --modes hard --steps 40 --finetune-steps 40 --videos $STATIC \
        --runs-dir runs/bench-static --uniform zero "gated:p0.5(full)" "gated:p0.25(full)" "gated:p0.1(full)" \
        lowrank:0.25 --out benchmarks/results/search_static.md
    $PY benchmarks/search_budgets.py --targets 0.3x --modes hard --steps 40 --finetune-steps 40 --videos $STATIC \
        --runs-dir runs/bench-static-v2 --uniform --out benchmarks/results/search_static_v2.md
fi
$PY benchmarks/search_budgets.py --targets 0.35x --modes hard --steps 40 --finetune-steps 40 \
    --runs-dir runs/bench-search-v2 --uniform --out benchmarks/results/search_budgets_v2.md
# 4. the search with its uniform candidates (top-p and threshold skip-convolutions), three budgets
$PY benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes hard --steps 40 --finetune-steps 40 --uniform \
    --runs-dir runs/bench-search-v3 --out benchmarks/results/search_budgets_v3.md
$PY benchmarks/search_budgets.py --targets 0.35x --modes soft --steps 40 --finetune-steps 40 --uniform \
    --runs-dir runs/bench-search-v3 --out benchmarks/results/search_budgets_v3_soft.md
# 5. every manual design (80 steps each, skip-convolution family included), an Optuna sweep, the Pareto front
$DN baselines --videos bundled --keyframe 8 --runs-dir runs/pareto-lite0 --name baselines --steps 80 --skipconv \
    --seed 0 --no-progress
$DN sweep --trials 20 --steps 5 --granularity block --name sweep --runs-dir runs/pareto-lite0 --no-progress
for metric in top1 fidelity; do
    $DN pareto runs/pareto-lite0/baselines runs/pareto-lite0/sweep runs/bench-search-v3 --metric $metric \
        --out benchmarks/results/pareto-$metric
done
# 6. issue 6: moving cameras at 2x and 1.5x per frame, per-layer allocation, adaptive key frames, and the search on static cameras (all of shared/video)
$PY benchmarks/search_budgets.py --targets 0.5x 0.667x --per-frame --modes soft --steps 40 --finetune-steps 40 \
    --uniform --runs-dir runs/bench-moving-v3 --out benchmarks/results/search_moving_v3.md
$PY benchmarks/allocation.py --out benchmarks/results/allocation.md
$PY benchmarks/keyframes.py --videos bundled --out benchmarks/results/keyframes_bundled.md
if [ -d ../shared/video ]; then
    $PY benchmarks/keyframes.py --videos shared --out benchmarks/results/keyframes_static.md
    $PY benchmarks/search_budgets.py --targets 0.4x --per-frame --modes soft --steps 40 --finetune-steps 40 \
        --videos shared --uniform "gated:p0.25(full)" "gated:p0.5(full)" "gated:t1(full)" \
        --runs-dir runs/bench-static-v3 --out benchmarks/results/search_static_v3.md
fi
# 7. running reference (DeltaCNN-style gates): designs on both regimes, calibrated threshold profiles, and the
#    searches that offer the running-reference candidates (BENCHMARKS.md section 6e)
RUNNING="gated:p0.25:run(full) gated:p0.35:run(full) gated:w0.05:run(full) gated:w0.1:run(full) gated:w0.2:run(full)"
$PY benchmarks/allocation.py --videos bundled --designs $RUNNING --out benchmarks/results/running_bundled.md
$PY benchmarks/search_budgets.py --targets 0.35x --modes soft --steps 40 --finetune-steps 40 \
    --uniform "gated:p0.35(full)" "gated:w0.1:run(full)" --runs-dir runs/bench-moving-v4 \
    --out benchmarks/results/search_budgets_v4_soft.md
$PY benchmarks/search_budgets.py --targets 0.5x 0.667x --per-frame --modes soft --steps 40 --finetune-steps 40 \
    --uniform "gated:w0.05:run(full)" --runs-dir runs/bench-moving-v4 --out benchmarks/results/search_moving_v4.md
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
    $PY benchmarks/search_budgets.py --targets 0.39x --per-frame --modes soft --steps 40 --finetune-steps 40 \
        --videos shared --uniform "gated:w0.04:run(full)" --runs-dir runs/bench-static-v4 \
        --out benchmarks/results/search_static_v4.md
fi
if [ -d ../shared/video ]; then
    $PY benchmarks/transfer_static.py
fi
# 8. selection and threshold calibration on validation frames plus groups of the training frames (section 2d)
$PY benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes soft --steps 40 --finetune-steps 40 \
    --uniform "gated:p0.1(full)" "gated:p0.25(full)" "gated:p0.35(full)" "gated:t1(full)" "gated:w0.1:run(full)" \
    --runs-dir runs/bench-search-v5 --out benchmarks/results/search_budgets_v5.md
if [ -d ../shared/video ]; then
    $PY benchmarks/search_budgets.py --targets 0.39x --per-frame --modes soft --steps 40 --finetune-steps 40 \
        --videos shared --uniform "gated:w0.04:run(full)" --runs-dir runs/bench-static-v5 \
        --out benchmarks/results/search_static_v5.md
fi
# 9. the tight budgets (section 2e): every calibrated candidate at 0.1x and 0.2x on the bundled clips, the search
#    at 0.1x ranked by top-1, and on the static cameras the candidates at 0.1x and the search at 0.1x and 0.2x
for DELTA in 0.1 0.2; do
    $PY benchmarks/threshold_profiles.py --videos bundled --delta $DELTA --gates top-p:0 t:0 t:-0.5 w:0.25 w:0 p:0 \
        --out benchmarks/results/threshold_profiles_bundled_${DELTA}x.md
done
$PY benchmarks/threshold_profiles.py --videos bundled --delta 0.1 --gates r:0 r:0.25 \
    --out benchmarks/results/threshold_profiles_bundled_0.1x_running_relative.md
$PY -m deltanas search --target 0.1x --steps 40 --warmup-steps 10 --finetune-steps 40 --select-metric top1 \
    --runs-dir runs/bench-search-v6 --name search-0.1x-top1 --no-progress
if [ -d ../shared/video ]; then
    $PY benchmarks/threshold_profiles.py --videos shared --delta 0.1 --gates top-p:0 p:0 t:0 w:0.25 \
        --out benchmarks/results/threshold_profiles_static_0.1x.md
    $PY benchmarks/search_budgets.py --targets 0.1x 0.2x --modes soft --steps 40 --finetune-steps 40 --videos shared \
        --uniform "gated:p0.1(full)" "gated:p0.25(full)" --runs-dir runs/bench-static-v6 \
        --out benchmarks/results/search_static_budgets_v6.md
fi
# 10. depthwise layers passing every change (section 2f): the search at the three budgets again, its running
#     candidate at 0.1x and 0.2x, the default search and --quick (timed), and the static cameras at 0.1x and 0.2x
$PY benchmarks/search_budgets.py --targets 0.1x 0.2x 0.35x --modes soft --steps 40 --finetune-steps 40 \
    --uniform "gated:p0.1(full)" "gated:p0.25(full)" "gated:p0.35(full)" "gated:t1(full)" "gated:w0.1:run(full)" \
    --runs-dir runs/bench-search-v7 --out benchmarks/results/search_budgets_v7.md
compare_v7 ""
for DELTA in 0.1 0.2; do
    $PY benchmarks/threshold_profiles.py --videos bundled --delta $DELTA --gates wc:0.25 \
        --out benchmarks/results/threshold_profiles_bundled_${DELTA}x_wc.md
done
/usr/bin/time -v $PY -m deltanas search --name default-v7 --no-progress 2> runs/default-v7.time
$PY -m deltanas search --quick --name quick-v7 --no-progress
if [ -d ../shared/video ]; then
    $PY benchmarks/search_budgets.py --targets 0.1x 0.2x --modes soft --steps 40 --finetune-steps 40 --videos shared \
        --uniform "gated:p0.1(full)" "gated:p0.25(full)" --runs-dir runs/bench-static-v7 \
        --out benchmarks/results/search_static_budgets_v7.md
fi
# 11. every key-frame phase (section 2g): the searches of step 10 and the manual designs around them, each
#     evaluated with the grid of key frames at each of the K offsets, and the paired bootstraps again; the
#     running candidate's variants tried at 0.1x first (negative profiles, a running top-p fraction)
$PY benchmarks/threshold_profiles.py --videos bundled --delta 0.1 --gates wc:-0.25 wc:-0.5 pc:0 pc:0.25 wc:0 \
    --out benchmarks/results/threshold_profiles_bundled_0.1x_more.md
$PY benchmarks/keyframe_phases.py runs/bench-search-v7/search-0.1x "gated:p0.1(full)" --spread \
    --out benchmarks/results/keyframe_phases_bundled_0.1x_spread.md
$PY benchmarks/keyframe_phases.py runs/bench-search-v7/search-0.1x runs/bench-search-v7/search-0.2x \
    runs/bench-search-v7/search-0.35x zero "gated:p0.1(full)" "gated:t3(full)" "gated:p0.15(full)" "gated:t2(full)" \
    "gated:p0.25(full)" "gated:p0.35(full)" "gated:t1(full)" --out benchmarks/results/keyframe_phases_bundled.md
B=runs/pareto-lite0/baselines  # the trained students of step 1
$PY benchmarks/keyframe_phases.py $B/uniform-lowrank-0.0625 $B/uniform-subsample_lowrank-0.25 $B/uniform-lowrank-0.125 \
    "subsample(full)" $B/uniform-lowrank-0.25 --out benchmarks/results/keyframe_phases_bundled_students.md
compare_v7 phases_ --phases 8
# 12. time on the sparse engine (BENCHMARKS.md, current state): the static-camera operating point and the
#     running gates against the dense teacher in PyTorch, ONNX Runtime and OpenVINO, at K = 8, 16, 32
if [ -d ../shared/video ]; then
    export DELTANAS_EXTRA_VIDEO=../shared/video
    $PY benchmarks/engine_speed.py --videos shared --out benchmarks/results/engine_static.md
    $PY benchmarks/engine_speed.py --videos ../shared/video/one-by-one-person-detection.mp4 \
        ../shared/video/car-detection.mp4 ../shared/video/bottle-detection.mp4 --threads 2 \
        --out benchmarks/results/engine_surveillance.md
fi
$PY benchmarks/engine_speed.py --videos bundled --keyframes 8 16 --out benchmarks/results/engine_moving.md
