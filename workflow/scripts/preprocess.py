from pathlib import Path

import pandas as pd

from rgmorph.logs import logged
from rgmorph.preprocess import build_dataset

with logged(snakemake.log[0]):
    build_dataset(
        sources=pd.read_csv(snakemake.input.sources),
        manifest=pd.read_csv(snakemake.input.manifest),
        cutout_dir=Path(snakemake.input.manifest).parent,
        output=snakemake.output.dataset,
        class_names=snakemake.params.class_names,
        survey=snakemake.wildcards.survey,
        **snakemake.params.preprocess,
    )
