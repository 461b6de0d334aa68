from pathlib import Path

import pandas as pd

from rgmorph.classify import preprocess_shard
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    count = preprocess_shard(
        sources=pd.read_csv(snakemake.input.sources, dtype={"name": str}, keep_default_na=False),
        manifest=pd.read_csv(snakemake.input.manifest, dtype={"name": str}),
        cutout_dir=Path(snakemake.input.manifest).parent,
        output=snakemake.output.dataset,
        survey=snakemake.params.survey,
        **snakemake.params.preprocess,
    )
    log.info("%d images preprocessed", count)
