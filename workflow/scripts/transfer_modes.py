from rgmorph import provenance
from rgmorph.logs import logged
from rgmorph.transfer_modes import write_transfer_modes_table

with logged(snakemake.log[0]):
    write_transfer_modes_table(snakemake.input.runs, snakemake.output.table)
    provenance.from_snakemake(snakemake, "table")
