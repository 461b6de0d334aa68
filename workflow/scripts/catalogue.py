from rgmorph.catalogue import write_catalogue_stage
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    sources = write_catalogue_stage(
        snakemake.params.catalogue, snakemake.params.class_names, snakemake.params.fields,
        sources_path=snakemake.output.sources, merge_report_path=snakemake.output.merge_report,
        neighbours_path=snakemake.output.neighbours,
    )
    log.info("%d sources: %s", len(sources), sources.groupby(["class_name", "split"]).size().to_dict())
