# Self-supervised pre-training (pretrain.method: simclr; rgmorph.pretrain): per survey and network one job
# pre-trains every seed's trunk on the pool, and train_self_supervised starts each seed of the study from it.
# Absent with method 'none'. The Gabor SVM is no network: it trains as before.
PRETRAIN = config["pretrain"]
PRETRAIN_DIR = f"{RESULTS}/pretrain/{{survey}}/{{model}}"


if PRETRAIN["method"] != "none":

    rule pretrain:
        input:
            sources=layout.sources(RESULTS),
            exclude=[entry["path"] for entry in PRETRAIN["exclude"]],
            mirrors=[f"{folder}/index.csv" for folder in pretrain_mirrors()],
        output:
            checkpoints=[f"{PRETRAIN_DIR}/seed{seed}/pretrained.pt" for seed in SEEDS],
            pool=f"{PRETRAIN_DIR}/pool.csv",
            history=f"{PRETRAIN_DIR}/history.csv",
        params:
            settings={key: value for key, value in PRETRAIN.items() if key not in ("method", "mirror_dir", "exclude")},
            exclude=PRETRAIN["exclude"],
            radius=PRETRAIN["exclude_radius_arcsec"] or config["catalogue"]["neighbours"]["same_source_arcsec"],
            mirrors=pretrain_mirrors(),
            skyview_name=lambda wildcards: config["surveys"][wildcards.survey]["skyview_name"],
            preprocess=config["preprocess"],
            class_names=config["class_names"],
            model_options=lambda wildcards: config["train"]["model_options"].get(wildcards.model, {}),
            seeds=SEEDS,
        threads: config["train"]["threads"]
        log:
            f"{RESULTS}/logs/pretrain/{{survey}}/{{model}}.log",
        conda:
            "../../envs/rgmorph.yaml"
        script:
            "../scripts/pretrain.py"

    # The study's training, each seed from its pre-trained network: the train rule's job with one more input
    # and its own script (train.smk and its script stay as the published run's dvc.lock recorded them).
    rule train_self_supervised:
        input:
            dataset=layout.dataset(RESULTS, "{survey}"),
            self_supervised=self_supervised_checkpoints,
        output:
            checkpoints=seed_files(SCRATCH_RUN, "checkpoint.pt"),
            histories=seed_files(SCRATCH_RUN, "history.csv"),
        params:
            train=scratch_settings,
            seeds=SEEDS,
        threads: config["train"]["threads"]
        log:
            seed_logs(SCRATCH_RUN, "train"),
        benchmark:
            f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}.tsv"
        conda:
            "../../envs/rgmorph.yaml"
        script:
            "../scripts/train_self_supervised.py"

    ruleorder: train_self_supervised > train
