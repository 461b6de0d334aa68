from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.train import SelfSupervisedStart, TrainSettings, train_seeds

# the seeds train together: each seed's log holds the whole job's log
with logged(snakemake.log[0], copies=snakemake.log[1:]):
    pretrained = list(snakemake.input.self_supervised)
    train_seeds(
        dataset_path=snakemake.input.dataset,
        model_name=snakemake.wildcards.model,
        seeds=snakemake.params.seeds,
        settings=TrainSettings.from_mapping({**snakemake.params.train, "threads": snakemake.threads}),
        checkpoint_paths=list(snakemake.output.checkpoints),
        history_paths=list(snakemake.output.histories),
        start=SelfSupervisedStart(pretrained) if pretrained else None,
    )
    for k, (checkpoint, history) in enumerate(zip(snakemake.output.checkpoints, snakemake.output.histories)):
        inputs = {"dataset": snakemake.input.dataset, **({"self_supervised": pretrained[k]} if pretrained else {})}
        provenance.from_snakemake(snakemake, "model", outputs=[checkpoint, history], inputs=inputs)
