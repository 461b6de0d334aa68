from rgmorph import provenance
from rgmorph.confounds import write_confounds_table
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    write_confounds_table(snakemake.input.runs, snakemake.input.sources, snakemake.params.parents or None,
                          snakemake.output.table, z_bins=snakemake.params.z_bins)
    provenance.from_snakemake(snakemake, "table")
