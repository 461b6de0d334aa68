from rgmorph.catalogue import read_catalogue, spec_from_config
from rgmorph.files import write_csv_atomic
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    spec = spec_from_config(snakemake.params.catalogue, snakemake.params.class_names)
    sources = read_catalogue(snakemake.input.catalogue, spec)
    log.info("%d sources: %s", len(sources), sources.groupby(["class_name", "split"]).size().to_dict())
    write_csv_atomic(snakemake.output.sources, sources, float_format="%.8f")
