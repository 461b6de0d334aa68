from rgmorph import provenance
from rgmorph.comparisons import paired_comparisons
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    paired_comparisons(snakemake.input.runs, snakemake.output.table)
    provenance.from_snakemake(snakemake, "table")
