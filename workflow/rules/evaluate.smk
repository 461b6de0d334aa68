rule evaluate:
    input:
        checkpoint=SCRATCH_RUN.file(RESULTS, "checkpoint.pt"),
        dataset=layout.dataset(RESULTS, "{survey}"),
    output:
        metrics=SCRATCH_RUN.file(RESULTS, "metrics.json"),
        predictions=SCRATCH_RUN.file(RESULTS, "predictions.csv"),
    params:
        split="test",
    log:
        SCRATCH_RUN.log(RESULTS, "evaluate"),
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/evaluate.py"


# fine-tuned runs: the same evaluation, one folder deeper
use rule evaluate as evaluate_transfer with:
    input:
        checkpoint=TRANSFER_RUN.file(RESULTS, "checkpoint.pt"),
        dataset=layout.dataset(RESULTS, "{survey}"),
    output:
        metrics=TRANSFER_RUN.file(RESULTS, "metrics.json"),
        predictions=TRANSFER_RUN.file(RESULTS, "predictions.csv"),
    log:
        TRANSFER_RUN.log(RESULTS, "evaluate"),


# the other transfer modes: the same evaluation, in their own folders
use rule evaluate as evaluate_transfer_mode with:
    input:
        checkpoint=TRANSFER_MODE_RUN.file(RESULTS, "checkpoint.pt"),
        dataset=layout.dataset(RESULTS, "{survey}"),
    output:
        metrics=TRANSFER_MODE_RUN.file(RESULTS, "metrics.json"),
        predictions=TRANSFER_MODE_RUN.file(RESULTS, "predictions.csv"),
    log:
        TRANSFER_MODE_RUN.log(RESULTS, "evaluate"),


# the same models scored on an extra split (evaluate.extra_splits, e.g. MiraBest's uncertain sources)
use rule evaluate as evaluate_extra_split with:
    output:
        metrics=SCRATCH_RUN.file(RESULTS, "metrics_{split}.json"),
        predictions=SCRATCH_RUN.file(RESULTS, "predictions_{split}.csv"),
    params:
        split=lambda wildcards: wildcards.split,
    log:
        SCRATCH_RUN.log(RESULTS, "evaluate_{split}"),


use rule evaluate_transfer as evaluate_transfer_extra_split with:
    output:
        metrics=TRANSFER_RUN.file(RESULTS, "metrics_{split}.json"),
        predictions=TRANSFER_RUN.file(RESULTS, "predictions_{split}.csv"),
    params:
        split=lambda wildcards: wildcards.split,
    log:
        TRANSFER_RUN.log(RESULTS, "evaluate_{split}"),


use rule evaluate_transfer_mode as evaluate_transfer_mode_extra_split with:
    output:
        metrics=TRANSFER_MODE_RUN.file(RESULTS, "metrics_{split}.json"),
        predictions=TRANSFER_MODE_RUN.file(RESULTS, "predictions_{split}.csv"),
    params:
        split=lambda wildcards: wildcards.split,
    log:
        TRANSFER_MODE_RUN.log(RESULTS, "evaluate_{split}"),


# every run on one extra split, summarised like the test split (summary_<split>.csv)
rule summarise_extra_split:
    input:
        metrics=lambda wildcards: run_files(f"metrics_{wildcards.split}.json"),
        predictions=lambda wildcards: run_files(f"predictions_{wildcards.split}.csv"),
    output:
        runs=f"{RESULTS}/tables/runs_{{split}}.csv",
        summary=report(
            f"{RESULTS}/tables/summary_{{split}}.csv",
            caption="../report/summary_extra_split.rst",
            category="Tables",
            subcategory="4. Extra evaluation splits",
            labels={"table": "Mean over seeds, split {split}", "format": "CSV"},
        ),
    log:
        f"{RESULTS}/logs/summarise_{{split}}.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/summarise.py"


rule summarise:
    input:
        metrics=all_metrics,
        predictions=all_predictions,
    output:
        runs=report(
            f"{RESULTS}/tables/runs.csv",
            caption="../report/runs.rst",
            category="Tables",
            subcategory="0. All runs",
            labels={"table": "Every run", "format": "CSV"},
        ),
        summary=report(
            f"{RESULTS}/tables/summary.csv",
            caption="../report/summary.rst",
            category="Tables",
            subcategory="0. All runs",
            labels={"table": "Mean over seeds", "format": "CSV"},
        ),
    log:
        f"{RESULTS}/logs/summarise.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/summarise.py"


rule tables:
    input:
        summary=layout.table(RESULTS, "summary.csv"),
        published="resources/published_results.csv",
    output:
        main_html=report(
            f"{RESULTS}/tables/main_table.html",
            caption="../report/table_main.rst",
            category="Tables",
            subcategory="1. Main results",
            labels={"table": "1. Main results", "format": "HTML (shown)"},
        ),
        main_tex=report(
            f"{RESULTS}/tables/main_table.tex",
            caption="../report/table_main.rst",
            category="Tables",
            subcategory="1. Main results",
            labels={"table": "1. Main results", "format": "LaTeX"},
        ),
        main_csv=report(
            f"{RESULTS}/tables/main_table.csv",
            caption="../report/table_main.rst",
            category="Tables",
            subcategory="1. Main results",
            labels={"table": "1. Main results", "format": "CSV"},
        ),
        transfer_html=report(
            f"{RESULTS}/tables/transfer_table.html",
            caption="../report/table_transfer.rst",
            category="Tables",
            subcategory="2. Transfer vs from scratch",
            labels={"table": "2. Transfer vs from scratch", "format": "HTML (shown)"},
        ),
        transfer_tex=report(
            f"{RESULTS}/tables/transfer_table.tex",
            caption="../report/table_transfer.rst",
            category="Tables",
            subcategory="2. Transfer vs from scratch",
            labels={"table": "2. Transfer vs from scratch", "format": "LaTeX"},
        ),
        transfer_csv=report(
            f"{RESULTS}/tables/transfer_table.csv",
            caption="../report/table_transfer.rst",
            category="Tables",
            subcategory="2. Transfer vs from scratch",
            labels={"table": "2. Transfer vs from scratch", "format": "CSV"},
        ),
        published_html=report(
            f"{RESULTS}/tables/published_table.html",
            caption="../report/table_published.rst",
            category="Tables",
            subcategory="3. Published results",
            labels={"table": "3. Published results", "format": "HTML (shown)"},
        ),
        published_tex=report(
            f"{RESULTS}/tables/published_table.tex",
            caption="../report/table_published.rst",
            category="Tables",
            subcategory="3. Published results",
            labels={"table": "3. Published results", "format": "LaTeX"},
        ),
        published_csv=report(
            f"{RESULTS}/tables/published_table.csv",
            caption="../report/table_published.rst",
            category="Tables",
            subcategory="3. Published results",
            labels={"table": "3. Published results", "format": "CSV"},
        ),
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/tables.py"
