from rgmorph import provenance
from rgmorph.comparisons import seed_ensembles
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    seed_ensembles(snakemake.input.runs, snakemake.output.table)
    provenance.from_snakemake(snakemake, "table")
