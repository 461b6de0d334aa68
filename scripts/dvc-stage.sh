#!/usr/bin/env bash
# Run one dvc.yaml stage: Snakemake makes every workflow output that lies inside DIR...
#
#   scripts/dvc-stage.sh DIR [DIR...]      # e.g. results/models
#
# Which outputs lie there comes from Snakemake's own DAG (`snakemake --summary`), and those
# files are the targets: a rule added later that writes into a stage's directories belongs to
# that stage without touching dvc.yaml, and dvc.yaml never repeats the workflow rule by rule.
# Snakemake decides which jobs need to run (and would run missing upstream jobs first).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -x .venv/bin/snakemake && ":$PATH:" != *":$PWD/.venv/bin:"* ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
if [[ $# -eq 0 ]]; then
    echo "usage: $0 DIR [DIR...]" >&2
    exit 2
fi
# the published run's configuration (as in dvc.yaml): the full study, narrowed by config/published.yaml
snakemake=(snakemake --profile workflow/profiles/default --configfile config/config.yaml config/published.yaml)

errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
if ! summary=$("${snakemake[@]}" --summary 2>"$errors"); then
    cat "$errors" >&2
    exit 1
fi
# first column of --summary: every output file of the workflow, one per line
dirs=("${@%/}")
mapfile -t targets < <(awk -F'\t' -v dirs="${dirs[*]}" '
    BEGIN { n = split(dirs, dir, " ") }
    NR > 1 { for (i = 1; i <= n; i++) if (index($1, dir[i] "/") == 1) { print $1; break } }' <<<"$summary")
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "dvc-stage: no workflow output under $*" >&2
    exit 1
fi
echo "dvc-stage: ${#targets[@]} outputs under $*" >&2
exec "${snakemake[@]}" -- "${targets[@]}"   # --: --configfile would take the targets
