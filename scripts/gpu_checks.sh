#!/usr/bin/env bash
# The training stage's GPU checks, in one call on one GPU (written for an H100):
#   bash scripts/gpu_checks.sh              # MODE=all: everything below, about 7.5 min (BUDGET_S=450)
#   MODE=bench bash scripts/gpu_checks.sh   # graph check + throughput sweeps only, about 4.5 min
#   MODE=study BUDGET_S=560 STUDY_SET="train.deterministic=false" bash scripts/gpu_checks.sh
#                                           # the paper config end to end only, with the whole budget
# A lent GPU session has about 15 minutes of device time in all, start-up included: the paper config
# (all 7 variants, both surveys, 5 seeds, transfer both ways) needs a call of its own.
# Needs the prepared datasets .gpu-data/FIRST.npz and .gpu-data/NVSS.npz (the pipeline's .npz files) and a
# python3 with torch (CUDA), numpy, pandas, scipy, scikit-learn, pyyaml and pillow; MODE=study also needs
# Snakemake (the one scheduler: `pip install snakemake` there, or carry a wheelhouse). Everything it writes goes under $OUT (default: a new folder in /tmp), at most 8 files:
#   gpu_checks.log      everything printed
#   graph_check.txt     CUDA-graph steps vs eager steps vs the CPU, from the same seeds
#   benchmark.csv       images/s of rgmorph's loop and of the published loop, per network, precision and
#                       kernel determinism, and their ratio
#   study.txt           the paper config end to end: test accuracy and AUROC per variant, timings
#   summary.csv, runs.csv   the study's tables (mean/std/intervals per variant; one row per run)
#   study_runs.tar.gz   every run's metrics.json, predictions, history, logs and the timing of each job
#                       (each checkpoint's phase_seconds: training steps / batch-norm statistics / validation)
# Stages have time limits that add up to at most BUDGET_S seconds. Settings (environment variables):
#   STUDY_SET     space-separated KEY=VALUE overrides of the study's config (Snakemake's --config), e.g.
#                 "train.precision=bf16"; STUDY_EXTRA an overlay config file merged on top
#   BENCH_DET     kernel determinism values to sweep in the benchmarks (default "1,0": deterministic, autotuned)
#   BENCH_PREC    precisions to sweep for the Tang CNN and LeNet (default "fp32,bf16")
# For a dry run on a CPU:
#   GPU_DATA=DIR STUDY_EXTRA=tiny.yaml BENCH_SECONDS=2 BENCH_FIT=32 bash scripts/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-all}
case "$MODE" in all | bench | study) ;; *) echo "MODE must be all, bench or study, not '$MODE'" >&2; exit 2 ;; esac
OUT=${OUT:-$(mktemp -d /tmp/gpu-checks.XXXXXX)}
DATA=${GPU_DATA:-.gpu-data}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-$([ "$MODE" = bench ] && echo 270 || echo 450)}
BENCH_DET=${BENCH_DET:-1,0}
BENCH_PREC=${BENCH_PREC:-fp32,bf16}
BENCH_FIT=${BENCH_FIT:+--fit-count $BENCH_FIT}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
START=$(date +%s)
GRAPHS=true

elapsed() { echo $(( $(date +%s) - START )); }
# limit LIMIT RESERVE: LIMIT seconds, or less so that RESERVE seconds stay for the stages after
limit() { local left=$(( BUDGET_S - $(elapsed) - $2 )); (( left < $1 )) && echo $(( left > 10 ? left : 10 )) || echo "$1"; }
stage() { echo; echo "=== $1 (at $(elapsed) s)"; }
no_graphs() { [ "$GRAPHS" = false ] && echo "--no-cuda-graphs"; }

environment() {
    stage "environment (MODE=$MODE, BUDGET_S=$BUDGET_S)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
    $PY - <<'PY'
import torch, numpy, pandas, scipy, sklearn, yaml
print("python torch", torch.__version__, "CUDA", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "-", "| numpy", numpy.__version__,
      "pandas", pandas.__version__, "sklearn", sklearn.__version__)
PY
    [ $? -eq 0 ] || { echo "$PY lacks a package above"; return 2; }
    ls -la "$DATA" || { echo "no datasets in $DATA"; return 2; }
}

graph_check() {  # RESERVE
    stage "CUDA graphs against eager steps and against the CPU (Tang CNN, LeNet; 3 epochs of 96 images)"
    timeout "$(limit 60 "$1")" $PY scripts/benchmark_training.py --datasets "$DATA" --check-graphs \
        --models tang2019,lenet --fit-count 96 > "$OUT/graph_check.txt" 2>&1
    local rc=$?
    cat "$OUT/graph_check.txt"
    if [ $rc -ne 0 ]; then GRAPHS=false; echo "graph check rc=$rc: what follows runs without CUDA graphs"; fi
}

study() {  # LIMIT RESERVE
    stage "the paper config end to end through Snakemake (7 variants x 2 surveys x 5 seeds + transfer both ways)"
    local study_dir study_limit
    study_dir=$(mktemp -d /tmp/rgmorph-study.XXXXXX)
    study_limit=$(limit "$1" "$2")
    # the prepared datasets stand in for catalogue -> fetch -> preprocess: marked up to date, not remade
    mkdir -p "$study_dir/datasets" && cp "$DATA"/*.npz "$study_dir/datasets/"
    # KEY=VALUE settings (dotted keys) as an overlay config file, merged last
    $PY - "$study_dir" ${STUDY_SET:-} "train.cuda_graphs=$GRAPHS" <<'PY'
import sys, yaml
overlay = {"results_dir": sys.argv[1]}
for item in sys.argv[2:]:
    key, _, value = item.partition("=")
    *parents, last = key.split(".")
    node = overlay
    for parent in parents:
        node = node.setdefault(parent, {})
    node[last] = yaml.safe_load(value)
open(f"{sys.argv[1]}/overlay.yaml", "w").write(yaml.safe_dump(overlay))
PY
    local run=($PY -m snakemake --cores "$(nproc)" --resources gpu=4 --set-resources train:gpu=1 train_transfer:gpu=1
               --configfile config/config.yaml ${STUDY_EXTRA:-} "$study_dir/overlay.yaml" --rerun-incomplete)
    "${run[@]}" --touch --allowed-rules catalogue fetch preprocess -- "$study_dir/datasets/FIRST.npz" \
        "$study_dir/datasets/NVSS.npz" > "$OUT/study.txt" 2>&1
    echo "time limit ${study_limit} s: ${run[*]}"
    /usr/bin/time -f "STUDY wall %e s, peak RSS %M kB" timeout "$study_limit" "${run[@]}" >> "$OUT/study.txt" 2>&1
    echo "rc=$?"
    grep -E "^STUDY|Error|error" "$OUT/study.txt" | tail -20
    # where each training job's time went (training steps, batch-norm statistics, validation)
    find "$study_dir/logs" -name '*.log' -exec grep -h "seeds in" {} + 2>/dev/null | sed 's/^.* INFO rgmorph.train: //' | sort
    cp "$study_dir/tables/summary.csv" "$study_dir/tables/runs.csv" "$OUT/" 2>/dev/null
    (cd "$study_dir" && tar -czf "$OUT/study_runs.tar.gz" --exclude='*.pt' --exclude='*.npz' \
        evaluation models logs tables benchmarks 2>/dev/null)
    ls -la "$OUT"
}

bench_fast() {  # LIMIT RESERVE
    stage "benchmark: Tang CNN and LeNet, published loop vs rgmorph's (1 model; 10 vmapped), determinism $BENCH_DET, precision $BENCH_PREC, 4 s each"
    timeout "$(limit "$1" "$2")" $PY scripts/benchmark_training.py --datasets "$DATA" --models tang2019,lenet \
        --group-sizes 1,10 --strategies vmap --seconds "${BENCH_SECONDS:-4}" --workers 8 $BENCH_FIT \
        --deterministic "$BENCH_DET" --precision "$BENCH_PREC" --out "$OUT/benchmark.csv" $(no_graphs)
    echo "rc=$?"
}

bench_others() {  # LIMIT RESERVE
    stage "benchmark: AlexNet, VGG, ResNet, D4 CNN, published loop vs rgmorph's (5 models at once), 4 s each"
    timeout "$(limit "$1" "$2")" $PY scripts/benchmark_training.py --datasets "$DATA" \
        --models alexnet,vgg,resnet,dn_equivariant --group-sizes 5 --seconds "${BENCH_SECONDS:-4}" --workers 8 \
        $BENCH_FIT --deterministic "$BENCH_DET" --out "$OUT/benchmark.csv" $(no_graphs)
    echo "rc=$?"
}

main() {
    environment || return 2
    case "$MODE" in
        bench) graph_check 200; bench_fast 130 70; bench_others 100 5 ;;
        study) graph_check "$(( BUDGET_S - 60 ))"; study "$BUDGET_S" 5 ;;
        all) graph_check 330; study 220 110; bench_fast 60 50; bench_others 80 5 ;;
    esac
    stage "done"
    [ -f "$OUT/benchmark.csv" ] && { column -s, -t "$OUT/benchmark.csv" 2>/dev/null || cat "$OUT/benchmark.csv"; }
    [ -f "$OUT/study.txt" ] && grep -E "^STUDY" "$OUT/study.txt"
    echo "outputs in $OUT"
}

main 2>&1 | tee "$OUT/gpu_checks.log"
