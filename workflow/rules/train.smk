# One job per (survey, model) trains every seed at once as one batched model (rgmorph.batched) and
# writes each seed's checkpoint and history where a one-seed job would; the job's resumable state
# (last.pt, not a declared output) sits beside the seed folders until the job ends.


rule train:
    input:
        dataset=layout.dataset(RESULTS, "{survey}"),
    output:
        checkpoints=seed_files(SCRATCH_RUN, "checkpoint.pt"),
        histories=seed_files(SCRATCH_RUN, "history.csv"),
    params:
        train=scratch_settings,
        seeds=SEEDS,
    threads: config["train"]["threads"]
    # a network that transfer runs fine-tune heads the longest chain of jobs: it starts first
    priority: lambda wildcards: int(wildcards.model in config["transfer"]["models"])
    resources:
        gpu=0,
    log:
        seed_logs(SCRATCH_RUN, "train"),
    benchmark:
        f"{RESULTS}/benchmarks/train/{{survey}}/{{model}}.tsv"
    conda:
        "../../envs/rgmorph.yaml"
    script:
        "../scripts/train.py"
