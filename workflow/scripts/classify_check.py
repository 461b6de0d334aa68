from rgmorph.classify_check import write_ood_check
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    check = write_ood_check(snakemake.input.table, snakemake.input.sources, snakemake.output.check,
                            **dict(snakemake.params.items()))
    log.info("%s:\n%s", snakemake.output.check, check.to_string(index=False))
