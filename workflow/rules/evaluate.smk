rule evaluate:
    input:
        checkpoint=f"{RESULTS}/models/{{survey}}/{{model}}/seed{{seed}}/checkpoint.pt",
        dataset=f"{RESULTS}/datasets/{{survey}}.npz",
    output:
        metrics=f"{RESULTS}/evaluation/{{survey}}/{{model}}/seed{{seed}}/metrics.json",
        predictions=f"{RESULTS}/evaluation/{{survey}}/{{model}}/seed{{seed}}/predictions.csv",
    log:
        f"{RESULTS}/logs/evaluate/{{survey}}/{{model}}/seed{{seed}}.log",
    script:
        "../scripts/evaluate.py"


rule summarise:
    input:
        metrics=run_files("metrics.json"),
    output:
        runs=f"{RESULTS}/tables/runs.csv",
        summary=f"{RESULTS}/tables/summary.csv",
    log:
        f"{RESULTS}/logs/summarise.log",
    script:
        "../scripts/summarise.py"
