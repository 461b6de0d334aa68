from rgmorph import provenance
from rgmorph.evaluate import evaluate_checkpoint
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    evaluate_checkpoint(
        checkpoint_path=snakemake.input.checkpoint,
        dataset_path=snakemake.input.dataset,
        metrics_path=snakemake.output.metrics,
        predictions_path=snakemake.output.predictions,
        split=snakemake.params.split,
    )
    provenance.from_snakemake(snakemake, "metrics", outputs=[snakemake.output.metrics])
    provenance.from_snakemake(snakemake, "predictions", outputs=[snakemake.output.predictions])
