from rgmorph.classify import write_shard_sources
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    shard = int(snakemake.wildcards.shard)
    rows = write_shard_sources(snakemake.input.sources, shard, snakemake.params.shard_size, snakemake.output.sources)
    log.info("shard %d: %d sources (%s .. %s)", shard, len(rows), rows["name"].iloc[0], rows["name"].iloc[-1])
