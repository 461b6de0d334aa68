#!/usr/bin/env bash
# The quick start through SLURM: Snakemake with the SLURM profile, every job an sbatch job.
#
#   scripts/slurm-cluster.sh start                 # a one-node cluster here, or use a real one
#   scripts/run-quickstart-on-slurm.sh [--fast] [snakemake args]
#
# --fast: one network (tang2019), one seed, two epochs (for CI): every rule of the quick start
# still runs as an sbatch job, in minutes instead of the better part of an hour on two CPUs.
# Outputs go to $RGMORPH_SLURM_RESULTS (default results/slurm-quickstart), so the local quick
# start (results/quickstart) is left alone; a previous run there is removed first, so that every
# job really runs. At the end it prints each Slurm job (id, rule, state, exit code, elapsed, the
# GPUs it was given) and the wall time, and fails unless every job COMPLETED.
# Without Slurm accounting (sacct), the plugin watches jobs with squeue.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -x .venv/bin/snakemake && ":$PATH:" != *":$PWD/.venv/bin:"* ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
results=${RGMORPH_SLURM_RESULTS:-results/slurm-quickstart}
log=$(mktemp -t rgmorph-slurm-XXXXXX.log)
configs=(config/quickstart.yaml)
if [[ ${1:-} == --fast ]]; then
    shift
    configs+=("$(mktemp -t rgmorph-slurm-fast-XXXXXX.yaml)")
    printf 'train:\n  models: [tang2019]\n  seeds: [0]\n  epochs: 2\ntransfer:\n  epochs: 2\n' >"${configs[1]}"
fi

if ! sinfo -h >/dev/null 2>&1; then
    echo "run-quickstart-on-slurm: no Slurm controller answers (start one: scripts/slurm-cluster.sh start)" >&2
    exit 1
fi
status_command=()
if ! sacct -n -X -S now >/dev/null 2>&1; then   # accounting_storage/none: sacct cannot answer
    status_command=(--slurm-status-command squeue)
fi

rm -rf -- "$results"
started=$(date +%s)
set +e
snakemake --profile workflow/profiles/slurm --configfile "${configs[@]}" \
    --config "results_dir=$results" "${status_command[@]}" \
    --slurm-logdir "$results/slurm-logs" --slurm-keep-successful-logs \
    "$@" 2>&1 | tee "$log"
code=${PIPESTATUS[0]}
set -e
wall=$(( $(date +%s) - started ))

ids=$(sed -n 's/.*submitted with SLURM jobid \([0-9][0-9]*\).*/\1/p' "$log")
printf '\n%-7s %-40s %-10s %-5s %-8s %-4s %-7s %s\n' JOBID RULE STATE EXIT ELAPSED CPUS MEM GPUS
failed=0
for id in $ids; do
    info=$(scontrol -o show job "$id" 2>/dev/null || true)
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$info"; }
    state=$(field JobState)
    gpus=$(field TresPerJob); gpus=${gpus#gres:}
    printf '%-7s %-40s %-10s %-5s %-8s %-4s %-7s %s\n' "$id" "$(field Comment | sed 's/^rule_//')" "${state:-?}" \
        "$(field ExitCode)" "$(field RunTime)" "$(field NumCPUs)" "$(field TRES | sed -n 's/.*mem=\([^,]*\).*/\1/p')" "${gpus:--}"
    [[ $state == COMPLETED ]] || failed=$((failed + 1))
done
count=$(wc -w <<<"$ids")
echo "run-quickstart-on-slurm: $count Slurm jobs, $failed not COMPLETED; snakemake exit $code; wall time ${wall} s ($(date -u -d @"$wall" +%M:%S))"
echo "run-quickstart-on-slurm: outputs in $results, Slurm logs in $results/slurm-logs, Snakemake log $log"
[[ $code -eq 0 && $failed -eq 0 && $count -gt 0 ]]
