rule evaluate:
    input:
        checkpoint=SCRATCH_RUN.file(RESULTS, "checkpoint.pt"),
        dataset=layout.dataset(RESULTS, "{survey}"),
    output:
        metrics=SCRATCH_RUN.file(RESULTS, "metrics.json"),
        predictions=SCRATCH_RUN.file(RESULTS, "predictions.csv"),
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
