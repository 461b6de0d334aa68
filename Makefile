# Two entry points for a fresh clone: `make quickstart` and `make test`.
# Each builds the virtual environment it needs (.venv) first; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 2

.PHONY: quickstart full test docs lint clean-results pull publish mirabest three-class-balance three-class classify referee-transfer splits splits-ablation models ablation

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# the default profile reruns what a killed run left incomplete
# (scripts/snakemake-run: after a kill -9 the same make command reruns, dropping the stale lock)
SNAKEMAKE := SNAKEMAKE=$(BIN)/snakemake scripts/snakemake-run --profile workflow/profiles/default --cores $(CORES)

quickstart: $(STAMP)
	$(SNAKEMAKE) --configfile config/quickstart.yaml
	$(BIN)/snakemake --report results/quickstart/report.html --configfile config/quickstart.yaml

full: $(STAMP)
	$(SNAKEMAKE) --configfile config/config.yaml
	$(BIN)/snakemake --report results/report.html --configfile config/config.yaml

# MiraBest confident (FRI/FRII on FIRST) with the uncertain sources scored apart: the README's CPU run
mirabest: $(STAMP)
	$(SNAKEMAKE) --configfile config/mirabest.yaml config/mirabest_cpu.yaml

# The 1255 MiraBest positions classified by the MiraBest study's tang2019 seeds, with the OOD check
# (docs/classify.md); needs the checkpoints of `make mirabest`
classify: $(STAMP)
	$(SNAKEMAKE) --configfile config/classify.yaml

# FRI/FRII/Bent: first class_balance chosen on validation (one short run per choice; compare
# results/three_class_balance/*/tables/summary_validation.csv), then the study with the choice made
three-class-balance: $(STAMP)
	for choice in none loss sampling; do \
	  $(SNAKEMAKE) --configfile config/three_class.yaml config/three_class_balance.yaml \
	    --config results_dir=results/three_class_balance/$$choice "train={\"class_balance\": \"$$choice\"}" \
	    -- results/three_class_balance/$$choice/tables/summary_validation.csv || exit 1; \
	done

three-class: $(STAMP)
	$(SNAKEMAKE) --configfile config/three_class.yaml config/three_class_cpu.yaml

# The run dvc.yaml versions: the full study narrowed by config/published.yaml (docs/dvc.md)
PUBLISHED := --configfile config/config.yaml config/published.yaml

# Spread across splits (issue 13): the FIRST study of config/splits.yaml on top of the published run, once
# per split seed into results/splits/seed<k> (only the two summaries it needs), then
# results/cleaned/tables/split_spread.csv over them, beside the published split cleaned like them (its row
# when `make cleaned` has run). The seeds go in through small config files written beside the results: Snakemake's
# --config reads nested values as strings. --allowed-rules: the table never makes Snakemake retrain the
# published study.
SPLIT_SEEDS ?= 1 2 3 4 5
comma := ,
empty :=
space := $(empty) $(empty)
splits: $(STAMP)
	for seed in $(SPLIT_SEEDS); do \
	  mkdir -p results/splits/seed$$seed && \
	  printf 'results_dir: results/splits/seed%s\ncatalogue: {split: {seed: %s}}\n' $$seed $$seed \
	    > results/splits/seed$$seed/split_seed.yaml && \
	  $(SNAKEMAKE) $(PUBLISHED) config/splits.yaml results/splits/seed$$seed/split_seed.yaml \
	    -- $(foreach table,summary summary_validation ensembles,results/splits/seed$$seed/tables/$(table).csv) \
	    || exit 1; \
	done
	printf 'splits: {seeds: [%s], results_dir: results/splits}\n' "$(subst $(space),$(comma) ,$(strip $(SPLIT_SEEDS)))" \
	  > results/splits/splits.yaml
	$(SNAKEMAKE) $(PUBLISHED) config/cleaned.yaml results/splits/splits.yaml --allowed-rules split_spread \
	  -- results/cleaned/tables/split_spread.csv

# Choices of config/ablation/ on the five random splits (issue 29): make splits' study once per choice and split
# seed, config/ablation.yaml and the choice on top (the Tang CNN alone), into results/splits/ablation/<choice>/seed<k>;
# then results/splits/ablation/tables/ablation.csv: per choice the mean over splits, paired by split with
# `baseline`, which is make splits' own Tang CNN (the same seeds, epochs and splits), picked on validation.
SPLIT_CHOICES ?= long_ema sigma2
splits-ablation: $(STAMP)
	for choice in $(SPLIT_CHOICES); do for seed in $(SPLIT_SEEDS); do \
	  folder=results/splits/ablation/$$choice/seed$$seed && mkdir -p $$folder && \
	  printf 'results_dir: %s\ncatalogue: {split: {seed: %s}}\n' $$folder $$seed > $$folder/split_seed.yaml && \
	  $(SNAKEMAKE) $(PUBLISHED) config/splits.yaml config/ablation.yaml config/ablation/$$choice.yaml \
	    $$folder/split_seed.yaml -- $(foreach table,summary summary_validation ensembles,$$folder/tables/$(table).csv) \
	    || exit 1; \
	done; done
	$(BIN)/rgmorph compare-split-choices --seeds $(SPLIT_SEEDS) --output results/splits/ablation/tables/ablation.csv \
	  baseline=results/splits $(foreach choice,$(SPLIT_CHOICES),$(choice)=results/splits/ablation/$(choice))

# Fair transfer on the cleaned split (config/cleaned.yaml + config/referee_transfer.yaml, in results/cleaned):
# the cleaned study plus the finetune and random_frozen transfer runs, tables/transfer_modes.csv and
# figures/transfer_modes (the cleaning drops test sources only, so scratch and frozen train as in `make cleaned`)
referee-transfer: $(STAMP)
	$(SNAKEMAKE) $(PUBLISHED) config/cleaned.yaml config/referee_transfer.yaml
	$(BIN)/snakemake --report results/cleaned/report.html $(PUBLISHED) config/cleaned.yaml config/referee_transfer.yaml

# Ablation (issue 29): each file of config/ablation/ (ABLATION_CHOICES, the reference first) on top of STUDY (its config
# files; the last names results_dir) and
# config/ablation.yaml, in <study results_dir>/ablation/<choice>; then tables/ablation.csv there: per choice the
# validation numbers it is picked on, and beside them the test accuracy, per-class recall and seed ensemble.
# A rerun goes on from the finished choices and jobs.
STUDY ?= config/mirabest_official.yaml
ABLATION_CHOICES ?= baseline ema long_ema sigma2
ablation: $(STAMP)
	results=$$($(BIN)/python -c "import sys, yaml; print([d for d in (yaml.safe_load(open(f)).get('results_dir') for f in sys.argv[1:]) if d][-1])" $(STUDY)) && \
	for choice in $(ABLATION_CHOICES); do \
	  $(SNAKEMAKE) --configfile $(STUDY) config/ablation.yaml config/ablation/$$choice.yaml \
	    --config results_dir=$$results/ablation/$$choice \
	    -- $(foreach table,summary_validation summary ensembles,$$results/ablation/$$choice/tables/$(table).csv) \
	    || exit 1; \
	done && \
	$(BIN)/rgmorph compare-choices --setting ablation --across-models $(foreach choice,$(ABLATION_CHOICES),$(choice)=$$results/ablation/$(choice)) \
	  --output $$results/ablation/tables/ablation.csv

# The shipped pretrained models (resources/models, rgmorph.shipped) regenerated from their studies' results
# (resources/models/models.yaml says which): run after re-running a study, then commit resources/models
models: $(STAMP)
	$(BIN)/rgmorph models export

# Pull the published run from the DVC remote and remake its figures (no fetching, no training)
pull: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH scripts/dvc-pull.sh
	$(BIN)/snakemake --profile workflow/profiles/default $(PUBLISHED)

# Run (or update) the published run, record it in dvc.lock and push its data to the remote
publish: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
	$(BIN)/dvc push
	@echo "publish: now commit the run: git add dvc.lock metrics && git commit"

# Referee items (issue 13). The published study on the cleaned split (config/cleaned.yaml: the test member of
# each train/test neighbour pair dropped), then its test numbers beside the published run's (results/tables/summary.csv
# when this clone has the run, else the committed metrics/summary.json)
.PHONY: cleaned circular-mask
cleaned: $(STAMP)
	$(SNAKEMAKE) $(PUBLISHED) config/cleaned.yaml
	$(BIN)/rgmorph cleaning-effect --published $(or $(wildcard results/tables/summary.csv),metrics/summary.json) \
	  --cleaned results/cleaned/tables/summary.csv \
	  --output results/cleaned/tables/cleaning_effect.csv

# preprocess.circular_mask chosen on validation: one study per choice (config/circular_mask.yaml), then
# results/circular_mask/tables/circular_mask.csv (validation accuracy and loss per choice, the pick, the test effect)
CIRCULAR_MASK := --configfile config/config.yaml config/circular_mask.yaml
circular-mask: $(STAMP)
	$(SNAKEMAKE) $(CIRCULAR_MASK) -- $(foreach table,summary_validation summary,results/circular_mask/false/tables/$(table).csv)
	$(SNAKEMAKE) $(CIRCULAR_MASK) config/circular_mask_true.yaml \
	  -- $(foreach table,summary_validation summary,results/circular_mask/true/tables/$(table).csv)
	$(BIN)/rgmorph compare-choices --setting circular_mask false=results/circular_mask/false \
	  true=results/circular_mask/true --output results/circular_mask/tables/circular_mask.csv

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/snakemake --lint --configfile config/quickstart.yaml

# The documentation site over docs/ into site/, strict: a broken link or a page missing from nav fails
# (tests/test_docs.py builds it the same way, so CI does too)
docs: $(STAMP)
	$(BIN)/python -m rgmorph.config_reference docs/configuration-reference.md
	$(BIN)/mkdocs build --strict
