from rgmorph.classify import concatenate, write_summary
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    table = concatenate(list(snakemake.input.tables), snakemake.output.table)
    record = write_summary(table, snakemake.output.summary)
    log.info("%s: %s", snakemake.output.table, record)
