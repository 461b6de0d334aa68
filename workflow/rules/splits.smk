# Spread across train/test splits (make splits): the split studies, one per splits.seeds entry, each run
# apart into <splits.results_dir>/seed<k>, summarised beside this study's own split. Absent without seeds.
from rgmorph.splits import study_dir

SPLIT_STUDIES = {seed: study_dir(config["splits"]["results_dir"], seed) for seed in config["splits"]["seeds"]}
# this study's own split, when its summaries are there: the table must not make Snakemake train it
MAIN_SUMMARIES = [layout.table(RESULTS, name) for name in ("summary.csv", "summary_validation.csv")
                  if os.path.exists(layout.table(RESULTS, name))]
# each study's seed ensembles, where it has them (make splits makes them; a one-seed study's add nothing)
ENSEMBLES = [path for path in (layout.table(folder, "ensembles.csv") for folder in [*SPLIT_STUDIES.values(), RESULTS])
             if os.path.exists(path)]


if SPLIT_STUDIES:

    rule split_spread:
        input:
            summaries=[layout.table(folder, "summary.csv") for folder in SPLIT_STUDIES.values()],
            validation=[layout.table(folder, "summary_validation.csv") for folder in SPLIT_STUDIES.values()],
            main=MAIN_SUMMARIES,
            ensembles=ENSEMBLES,
        output:
            table=report(
                f"{RESULTS}/tables/split_spread.csv",
                caption="../report/split_spread.rst",
                category="Tables",
                subcategory="8. Spread across splits",
                labels={"table": "Test and validation accuracy over repeated splits", "format": "CSV"},
            ),
        params:
            studies=SPLIT_STUDIES,
            main_results=RESULTS if MAIN_SUMMARIES else None,
        log:
            f"{RESULTS}/logs/split_spread.log",
        conda:
            "../../envs/rgmorph.yaml"
        script:
            "../scripts/split_spread.py"
