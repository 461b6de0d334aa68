from pathlib import Path

import pandas as pd

from rgmorph import provenance
from rgmorph.catalogue import catalogue_paths
from rgmorph.fetch import read_manifest
from rgmorph.logs import logged
from rgmorph.preprocess import build_dataset

with logged(snakemake.log[0]):
    build_dataset(
        sources=pd.read_csv(snakemake.input.sources, dtype={"name": str}),  # names as the manifest reads them
        manifest=read_manifest(snakemake.input.manifest),
        cutout_dir=Path(snakemake.input.manifest).parent,
        output=snakemake.output.dataset,
        class_names=snakemake.params.class_names,
        survey=snakemake.wildcards.survey,
        # from the config, not a rule param: it only fills headers without a scale, and a new param
        # would make every existing study preprocess (and train) again
        pixel_scale=snakemake.config["surveys"][snakemake.wildcards.survey].get("pixel_scale_arcsec"),
        **snakemake.params.preprocess,
    )
    # Provenance: the dataset's inputs (raw catalogue too), and every cutout and catalogue row in it.
    provenance.from_snakemake(
        snakemake, "dataset",
        inputs={**dict(snakemake.input.items()), "catalogue": catalogue_paths(snakemake.config["catalogue"])},
        details=provenance.dataset_details(snakemake.output.dataset, snakemake.input.manifest, snakemake.input.sources),
    )
