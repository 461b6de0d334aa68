# Transfer learning (Tang, Scaife & Leahy 2019): each seed's network trained from scratch on one
# survey is fine-tuned on the other, with the configured layers frozen, and evaluated beside the
# from-scratch runs on the target survey:
#   results/models/{survey}/{model}/transfer-from-{source}/seed{seed}/checkpoint.pt
#   results/evaluation/{survey}/{model}/transfer-from-{source}/seed{seed}/metrics.json
# What the transfer maps onto what (NVSS pixels cover 8.3 times the angle of FIRST ones): see
# src/rgmorph/transfer.py.

from rgmorph import study
from rgmorph import transfer as transfer_module

TRANSFER = config.get("transfer", {})

config_check.raise_if_any(transfer_module.transfer_problems(TRANSFER), "config")


# per-run files of the transfer runs, for the summaries and figures (the hook of common.smk's evaluation_files)
extra_run_files = lambda name: study.transfer_run_files(config, RESULTS, name)


rule train_transfer:
    input:
        dataset=f"{RESULTS}/datasets/{{survey}}.npz",
        pretrained=expand(f"{RESULTS}/models/{{source}}/{{model}}/seed{{seed}}/checkpoint.pt", seed=SEEDS,
                          allow_missing=True),
    output:
        checkpoints=expand(f"{RESULTS}/models/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}/checkpoint.pt",
                           seed=SEEDS, allow_missing=True),
        histories=expand(f"{RESULTS}/models/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}/history.csv",
                         seed=SEEDS, allow_missing=True),
    wildcard_constraints:
        source="|".join(SURVEYS),
    params:
        train=lambda wildcards: study.transfer_train_settings(config, wildcards.model),
        seeds=SEEDS,
        frozen=lambda wildcards: transfer_module.per_model(TRANSFER.get("freeze", {}), wildcards.model),
        reinitialise=lambda wildcards: transfer_module.per_model(TRANSFER.get("reinitialise", {}), wildcards.model),
        batch_norm=TRANSFER.get("batch_norm", "adapt"),
    threads: config["train"]["threads"]
    resources:
        gpu=0,
    log:
        expand(f"{RESULTS}/logs/train/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}.log", seed=SEEDS,
               allow_missing=True),
    benchmark:
        f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}-transfer-from-{{source}}.tsv"
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/train.py"


rule evaluate_transfer:
    input:
        checkpoint=f"{RESULTS}/models/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}/checkpoint.pt",
        dataset=f"{RESULTS}/datasets/{{survey}}.npz",
    output:
        metrics=f"{RESULTS}/evaluation/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}/metrics.json",
        predictions=f"{RESULTS}/evaluation/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}/predictions.csv",
    wildcard_constraints:
        source="|".join(SURVEYS),
    log:
        f"{RESULTS}/logs/evaluate/{{survey}}/{{model}}/transfer-from-{{source}}/seed{{seed}}.log",
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/evaluate.py"
