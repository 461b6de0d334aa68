from rgmorph import provenance
from rgmorph.evaluate import summarise_runs
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    summarise_runs(snakemake.input.metrics, snakemake.output.runs, snakemake.output.summary,
                   predictions_paths=snakemake.input.get("predictions"))
    provenance.from_snakemake(snakemake, "table")
