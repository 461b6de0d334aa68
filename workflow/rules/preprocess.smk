rule preprocess:
    input:
        sources=f"{RESULTS}/catalogue/sources.csv",
        manifest=f"{RESULTS}/cutouts/{{survey}}/manifest.csv",
    output:
        dataset=f"{RESULTS}/datasets/{{survey}}.npz",
    params:
        preprocess=config["preprocess"],
        class_names=config["class_names"],
    log:
        f"{RESULTS}/logs/preprocess/{{survey}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/preprocess/{{survey}}.tsv"
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/preprocess.py"
