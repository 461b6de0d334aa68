from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.splits import write_split_spread

with logged(snakemake.log[0]) as log:
    rows = write_split_spread(snakemake.params.studies, snakemake.output.table, snakemake.params.main_results)
    log.info("%d rows over %d split studies", len(rows), len(snakemake.params.studies))
    provenance.from_snakemake(snakemake, "table")
