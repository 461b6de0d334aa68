rule train:
    input:
        dataset=f"{RESULTS}/datasets/{{survey}}.npz",
    output:
        checkpoint=f"{RESULTS}/models/{{survey}}/{{model}}/seed{{seed}}/checkpoint.pt",
        history=f"{RESULTS}/models/{{survey}}/{{model}}/seed{{seed}}/history.csv",
    params:
        train=train_settings(),
        model_options=model_options,
    threads: config["train"]["threads"]
    resources:
        gpu=0,
    log:
        f"{RESULTS}/logs/train/{{survey}}/{{model}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}/seed{{seed}}.tsv"
    script:
        "../scripts/train.py"
