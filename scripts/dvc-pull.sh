#!/usr/bin/env bash
# Pull a versioned run with DVC, then tell Snakemake that what DVC restored is up to date.
#
#   scripts/dvc-pull.sh [dvc pull arguments]   # e.g. -r public; stage names pull part of a run
#   scripts/dvc-pull.sh --checkout [args]      # after `git checkout <rev>`: dvc checkout instead
#   scripts/dvc-pull.sh --no-pull              # only the Snakemake part (dvc.yaml's report stage)
#
# Why: DVC restores contents, not modification times, and a fresh clone has no .snakemake/
# metadata. Snakemake would find inputs newer than outputs and redo fetch, preprocess, train.
# So, after DVC:
# 1. the figures are removed: they are not versioned (cache: false in dvc.yaml), and figures
#    left from another revision must not pass for this one's;
# 2. `snakemake --touch --forceall` marks every job whose outputs are on disk as done, in
#    dependency order (modification times then increase along the DAG), and records its
#    metadata (params, code), so a later change to the configuration still reruns the jobs
#    it affects. Jobs whose outputs are missing (the figures) are left to the next run.
# Then `snakemake --profile workflow/profiles/default` makes the figures, and only them.
#
# Run it right after pulling, before changing anything: whatever is on disk at that moment is
# declared up to date with the current config and code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -x .venv/bin/dvc && ":$PATH:" != *":$PWD/.venv/bin:"* ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
CONFIG=(config/config.yaml config/published.yaml)   # the configuration dvc.yaml versions, merged in this order

case "${1:-}" in
    --no-pull) ;;
    --checkout) shift; dvc checkout "$@" ;;
    *) if ! dvc pull "$@"; then
           # nothing was touched for Snakemake: the run on disk is as it was
           echo "dvc-pull: 'dvc pull' failed. Remotes: $(dvc remote list | tr '\t\n' ' ')" >&2
           echo "dvc-pull: point the default remote at the published one: dvc remote modify --local local url PATH (docs/dvc.md)" >&2
           exit 1
       fi ;;
esac

# results_dir as Snakemake will merge it, checked as Snakemake checks it: never an empty, root or '..' path
# ("rm -rf /figures" is not a way to regenerate figures)
results=$(python -c '
import sys, yaml
from rgmorph.config_check import results_dir_problems
results_dir = "results"
for path in sys.argv[1:]:
    results_dir = (yaml.safe_load(open(path)) or {}).get("results_dir", results_dir)
problems = results_dir_problems("" if results_dir is None else str(results_dir))
if problems:
    merged = " + ".join(sys.argv[1:])
    sys.exit(f"dvc-pull: {problems[0]} (in {merged}); nothing was removed")
print(results_dir)' "${CONFIG[@]}") || exit 2
rm -rf -- "${results:?}/figures"
snakemake --profile workflow/profiles/default --configfile "${CONFIG[@]}" --touch --forceall --quiet rules
echo "dvc-pull: every output on disk is up to date for Snakemake; 'snakemake --profile workflow/profiles/default --configfile ${CONFIG[*]}' makes the rest (figures)." >&2
