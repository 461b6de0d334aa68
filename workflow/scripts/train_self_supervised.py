import logging

from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.train import SelfSupervisedStart, TrainSettings, train_seeds

with logged(snakemake.log[0]):
    for path in snakemake.log[1:]:  # the seeds train together: each seed's log holds the whole job's log
        handler = logging.FileHandler(path, mode="w")
        handler.setFormatter(logging.getLogger().handlers[0].formatter)
        logging.getLogger().addHandler(handler)
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
