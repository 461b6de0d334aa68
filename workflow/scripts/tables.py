from rgmorph import provenance, tables
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    outputs = {name: (snakemake.output[f"{name}_csv"], snakemake.output[f"{name}_tex"], snakemake.output[f"{name}_html"])
               for name in ("main", "transfer", "published")}
    tables.write_all(snakemake.input.summary, outputs, tables.data_description(snakemake.config),
                     published_path=snakemake.input.published)
    provenance.from_snakemake(snakemake, "table")
