from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.train import TrainSettings, train_model

with logged(snakemake.log[0]):
    settings = TrainSettings(**{**snakemake.params.train, "threads": snakemake.threads,
                                "model_options": snakemake.params.model_options})
    train_model(
        dataset_path=snakemake.input.dataset,
        model_name=snakemake.wildcards.model,
        seed=int(snakemake.wildcards.seed),
        settings=settings,
        checkpoint_path=snakemake.output.checkpoint,
        history_path=snakemake.output.history,
    )
    provenance.from_snakemake(snakemake, "model")  # sidecars: the dataset's sha256, settings, code version
