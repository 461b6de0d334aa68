#!/usr/bin/env bash
# The training stage's GPU checks, in one run of about 7 minutes on one GPU (written for an H100):
#   bash scripts/gpu_checks.sh
# Needs the prepared datasets .gpu-data/FIRST.npz and .gpu-data/NVSS.npz (the pipeline's .npz files) and a
# python3 with torch (CUDA), numpy, pandas, scipy, scikit-learn, pyyaml and pillow; neither Snakemake nor
# astropy. Everything it writes goes under $OUT (default: a new folder in /tmp), at most 8 files:
#   gpu_checks.log      everything printed
#   graph_check.txt     CUDA-graph steps vs eager steps vs the CPU, from the same seeds
#   benchmark.csv       images/s of rgmorph's loop and of the published loop, per network, and their ratio
#   study.txt           the paper config end to end: test accuracy and AUROC per variant, timings
#   summary.csv, runs.csv   the study's tables (mean/std/intervals per variant; one row per run)
#   study_runs.tar.gz   every run's metrics.json, predictions, history, logs and the timing of each job
# Stages have time limits that add up to at most BUDGET_S seconds (default 450). For a dry run on a CPU:
#   GPU_DATA=DIR STUDY_EXTRA=tiny.yaml BENCH_SECONDS=2 BENCH_FIT=32 bash scripts/gpu_checks.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/gpu-checks.XXXXXX)}
DATA=${GPU_DATA:-.gpu-data}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-450}
STUDY_ARGS=(--study config/config.yaml)
[ -n "${STUDY_EXTRA:-}" ] && STUDY_ARGS+=(--study "$STUDY_EXTRA")
BENCH_FIT=${BENCH_FIT:+--fit-count $BENCH_FIT}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
STUDY=$(mktemp -d /tmp/rgmorph-study.XXXXXX)
START=$(date +%s)

elapsed() { echo $(( $(date +%s) - START )); }
# limit LIMIT RESERVE: LIMIT seconds, or less so that RESERVE seconds stay for the stages after
limit() { local left=$(( BUDGET_S - $(elapsed) - $2 )); (( left < $1 )) && echo $(( left > 10 ? left : 10 )) || echo "$1"; }
stage() { echo; echo "=== $1 (at $(elapsed) s)"; }

main() {
stage "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
$PY - <<'PY'
import torch, numpy, pandas, scipy, sklearn, yaml
print("python torch", torch.__version__, "CUDA", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "-", "| numpy", numpy.__version__,
      "pandas", pandas.__version__, "sklearn", sklearn.__version__)
PY
ls -la "$DATA" || { echo "no datasets in $DATA"; return 2; }

stage "1/4 CUDA graphs against eager steps and against the CPU (Tang CNN, LeNet; 3 epochs of 96 images)"
GRAPHS=true
timeout "$(limit 60 330)" $PY scripts/benchmark_training.py --datasets "$DATA" --check-graphs --models tang2019,lenet \
    --fit-count 96 > "$OUT/graph_check.txt" 2>&1
rc=$?
cat "$OUT/graph_check.txt"
if [ $rc -ne 0 ]; then GRAPHS=false; echo "graph check rc=$rc: the study and benchmarks run without CUDA graphs"; fi
NOGRAPH=""
[ "$GRAPHS" = false ] && NOGRAPH="--no-cuda-graphs"

stage "2/4 the paper config end to end (config/config.yaml: 7 variants x 2 surveys x 5 seeds + transfer both ways)"
STUDY_LIMIT=$(limit 300 110)
timeout "$STUDY_LIMIT" $PY scripts/benchmark_training.py --datasets "$DATA" "${STUDY_ARGS[@]}" \
    --study-results "$STUDY" --study-set "train.cuda_graphs=$GRAPHS" --gpu-jobs 4 --cpu-jobs 10 \
    --deadline-s $(( STUDY_LIMIT - 100 )) --hard-deadline-s $(( STUDY_LIMIT - 45 )) > "$OUT/study.txt" 2>&1
echo "rc=$?"
grep -v " INFO " "$OUT/study.txt" | tail -60
cp "$STUDY/tables/summary.csv" "$STUDY/tables/runs.csv" "$OUT/" 2>/dev/null
(cd "$STUDY" && tar -czf "$OUT/study_runs.tar.gz" --exclude='*.pt' --exclude='*.npz' --exclude='parts' \
    evaluation models logs tables study_timing.json 2>/dev/null)
ls -la "$OUT"

stage "3/4 benchmark: Tang CNN and LeNet, published loop vs rgmorph's (1 model; 10 models vmapped or looped), 6 s each"
timeout "$(limit 100 20)" $PY scripts/benchmark_training.py --datasets "$DATA" --models tang2019,lenet \
    --group-sizes 1,10 --strategies vmap,loop --seconds "${BENCH_SECONDS:-6}" --workers 8 $BENCH_FIT \
    --out "$OUT/benchmark.csv" $NOGRAPH
echo "rc=$?"

stage "4/4 benchmark: AlexNet, VGG, ResNet, D4 CNN, published loop vs rgmorph's (5 models at once), 4 s each"
timeout "$(limit 80 5)" $PY scripts/benchmark_training.py --datasets "$DATA" --models alexnet,vgg,resnet,dn_equivariant \
    --group-sizes 5 --seconds "${BENCH_SECONDS:-4}" --workers 8 $BENCH_FIT --out "$OUT/benchmark.csv" $NOGRAPH
echo "rc=$?"

stage "done"
column -s, -t "$OUT/benchmark.csv" 2>/dev/null || cat "$OUT/benchmark.csv"
grep -E "^STUDY|^FAILED" "$OUT/study.txt"
echo "outputs in $OUT"
}

main 2>&1 | tee "$OUT/gpu_checks.log"
