from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.neighbours import write_neighbours_table

with logged(snakemake.log[0]) as log:
    table = write_neighbours_table(snakemake.input.pairs, snakemake.params.neighbours, snakemake.output.table)
    log.info("%d train/test pairs: %s", len(table), table["action"].value_counts().to_dict())
    provenance.from_snakemake(snakemake, "table")
