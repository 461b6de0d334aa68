# One job per (survey, model) trains every seed at once as one batched model (rgmorph.batched) and
# writes each seed's checkpoint and history where a one-seed job would; the job's resumable state
# (last.pt, not a declared output) sits beside the seed folders until the job ends.

from rgmorph import study


rule train:
    input:
        dataset=f"{RESULTS}/datasets/{{survey}}.npz",
    output:
        checkpoints=expand(f"{RESULTS}/models/{{survey}}/{{model}}/seed{{seed}}/checkpoint.pt", seed=SEEDS,
                           allow_missing=True),
        histories=expand(f"{RESULTS}/models/{{survey}}/{{model}}/seed{{seed}}/history.csv", seed=SEEDS,
                         allow_missing=True),
    params:
        train=lambda wildcards: study.model_train_settings(config, wildcards.model),
        seeds=SEEDS,
    threads: config["train"]["threads"]
    resources:
        gpu=0,
    log:
        expand(f"{RESULTS}/logs/train/{{survey}}/{{model}}/seed{{seed}}.log", seed=SEEDS, allow_missing=True),
    benchmark:
        f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}.tsv"
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/train.py"
