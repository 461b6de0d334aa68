from rgmorph.classify import read_unlabelled
from rgmorph.files import write_csv_atomic
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    columns = snakemake.params.columns
    table = read_unlabelled(snakemake.input.catalogue, name=columns["name"], ra=columns["ra"], dec=columns["dec"],
                            carry=snakemake.params.carry)
    write_csv_atomic(snakemake.output.sources, table)
    log.info("%d unlabelled sources from %s; carried columns %s", len(table), snakemake.input.catalogue,
             list(table.columns[3:]))
