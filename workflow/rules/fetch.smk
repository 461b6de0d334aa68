rule fetch:
    input:
        sources=f"{RESULTS}/catalogue/sources.csv",
    output:
        manifest=f"{RESULTS}/cutouts/{{survey}}/manifest.csv",
    params:
        survey=survey_settings,
    log:
        f"{RESULTS}/logs/fetch/{{survey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fetch/{{survey}}.tsv"
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/fetch.py"
