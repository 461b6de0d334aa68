from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.train import TrainSettings, TransferSpec, train_seeds

# the seeds train together: each seed's log holds the whole job's log
with logged(snakemake.log[0], copies=snakemake.log[1:]):
    settings = TrainSettings.from_mapping({**snakemake.params.train, "threads": snakemake.threads})
    transfer = None
    if "pretrained" in snakemake.input.keys():
        transfer = TransferSpec(source=snakemake.wildcards.source, checkpoints=list(snakemake.input.pretrained),
                                frozen=snakemake.params.frozen, reinitialise=snakemake.params.reinitialise,
                                batch_norm=snakemake.params.batch_norm)
    train_seeds(
        dataset_path=snakemake.input.dataset,
        model_name=snakemake.wildcards.model,
        seeds=snakemake.params.seeds,
        settings=settings,
        checkpoint_paths=list(snakemake.output.checkpoints),
        history_paths=list(snakemake.output.histories),
        transfer=transfer,
    )
    # sidecars: the inputs' sha256, each seed's with its own pre-trained checkpoint
    for k, (checkpoint, history) in enumerate(zip(snakemake.output.checkpoints, snakemake.output.histories)):
        inputs = {"dataset": snakemake.input.dataset}
        if transfer:
            inputs["pretrained"] = snakemake.input.pretrained[k]
        provenance.from_snakemake(snakemake, "model", outputs=[checkpoint, history], inputs=inputs)
