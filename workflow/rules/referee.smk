# What a referee asks of the main results: which differences are significant (paired tests on the
# same test sources), whether parent catalogue or redshift, not morphology, drives accuracy, and
# which test sources were (nearly) seen in training.


rule paired_comparisons:
    input:
        runs=layout.table(RESULTS, "runs.csv"),
        predictions=all_predictions,
    output:
        table=report(
            f"{RESULTS}/tables/paired_comparisons.csv",
            caption="../report/paired_comparisons.rst",
            category="Tables",
            subcategory="5. Paired comparisons",
            labels={"table": "Paired bootstrap and McNemar", "format": "CSV"},
        ),
    log:
        f"{RESULTS}/logs/paired_comparisons.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/paired_comparisons.py"


rule seed_ensembles:
    input:
        runs=layout.table(RESULTS, "runs.csv"),
        predictions=all_predictions,
    output:
        table=report(
            f"{RESULTS}/tables/ensembles.csv",
            caption="../report/ensembles.rst",
            category="Tables",
            subcategory="5. Paired comparisons",
            labels={"table": "Seed ensembles", "format": "CSV"},
        ),
    log:
        f"{RESULTS}/logs/seed_ensembles.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/seed_ensembles.py"


rule confounds:
    input:
        runs=layout.table(RESULTS, "runs.csv"),
        sources=layout.sources(RESULTS),
        predictions=all_predictions,
        parents=list(config["confounds"]["parent_catalogues"].values()),
    output:
        table=report(
            f"{RESULTS}/tables/confounds.csv",
            caption="../report/confounds.rst",
            category="Tables",
            subcategory="6. Confounds",
            labels={"table": "Accuracy by parent catalogue and redshift", "format": "CSV"},
        ),
    params:
        parents=config["confounds"]["parent_catalogues"],
        z_bins=config["confounds"]["z_bins"],
    log:
        f"{RESULTS}/logs/confounds.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/confounds.py"


rule figure_confounds:
    input:
        table=layout.table(RESULTS, "confounds.csv"),
    output:
        png=report(f"{RESULTS}/figures/confounds.png", caption="../report/confounds.rst", category="Figures",
                   subcategory="5. Confounds"),
        pdf=layout.figure(RESULTS, "confounds", "pdf"),
    log:
        f"{RESULTS}/logs/figures/confounds.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/confounds.py"


rule neighbours_table:
    input:
        pairs=f"{RESULTS}/catalogue/neighbours.csv",
    output:
        table=report(
            f"{RESULTS}/tables/neighbours.csv",
            caption="../report/neighbours.rst",
            category="Tables",
            subcategory="7. Cross-split neighbours",
            labels={"table": "Train/test neighbours and what was done", "format": "CSV"},
        ),
    params:
        neighbours=config["catalogue"]["neighbours"],
    log:
        f"{RESULTS}/logs/neighbours_table.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/neighbours_table.py"


# Fair transfer (transfer.modes): each mode against scratch and against frozen, paired per seed.
# In the DAG only when final_outputs() asks, i.e. a study with transfer runs in more than one mode.
rule transfer_modes:
    input:
        runs=layout.table(RESULTS, "runs.csv"),
    output:
        table=report(
            f"{RESULTS}/tables/transfer_modes.csv",
            caption="../report/transfer_modes.rst",
            category="Tables",
            subcategory="9. Transfer modes",
            labels={"table": "Transfer modes vs scratch and frozen, paired by seed", "format": "CSV"},
        ),
    log:
        f"{RESULTS}/logs/transfer_modes.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/transfer_modes.py"


rule figure_transfer_modes:
    input:
        runs=layout.table(RESULTS, "runs.csv"),
    output:
        png=report(f"{RESULTS}/figures/transfer_modes.png", caption="../report/transfer_modes.rst",
                   category="Figures", subcategory="6. Transfer modes"),
        pdf=layout.figure(RESULTS, "transfer_modes", "pdf"),
    log:
        f"{RESULTS}/logs/figures/transfer_modes.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/figures/transfer_modes.py"
