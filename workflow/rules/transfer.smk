# Transfer learning (Tang, Scaife & Leahy 2019): each seed's network trained from scratch on one
# survey is fine-tuned on another with the configured layers frozen, and evaluated beside the
# from-scratch runs there (rgmorph.settings says what maps onto what). The study's run list
# (common.smk, RUNS) already holds these runs, so summaries and figures see them.
# transfer.modes: 'frozen' is the rule below (paths as before modes); the other modes are its copy,
# one folder suffix apart (transfer-from-{source}-{mode}), with their own frozen/reinitialised layers.


rule train_transfer:
    input:
        dataset=layout.dataset(RESULTS, "{survey}"),
        pretrained=seed_files(Run("{source}", "{model}", "{seed}"), "checkpoint.pt"),
    output:
        checkpoints=seed_files(TRANSFER_RUN, "checkpoint.pt"),
        histories=seed_files(TRANSFER_RUN, "history.csv"),
    params:
        train=transfer_settings,
        seeds=SEEDS,
        frozen=frozen_layers,
        reinitialise=reinitialised_layers,
        batch_norm=config["transfer"]["batch_norm"],
    threads: config["train"]["threads"]
    resources:
        gpu=0,
    log:
        seed_logs(TRANSFER_RUN, "train"),
    benchmark:
        f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}-transfer-from-{{source}}.tsv"
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/train.py"



use rule train_transfer as train_transfer_mode with:
    output:
        checkpoints=seed_files(TRANSFER_MODE_RUN, "checkpoint.pt"),
        histories=seed_files(TRANSFER_MODE_RUN, "history.csv"),
    log:
        seed_logs(TRANSFER_MODE_RUN, "train"),
    benchmark:
        f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}-transfer-from-{{source}}-{{mode}}.tsv"
