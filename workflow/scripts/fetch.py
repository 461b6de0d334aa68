from pathlib import Path

import pandas as pd

from rgmorph.fetch import FetchSettings, Survey, fetch_survey
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    manifest = Path(snakemake.output.manifest)
    fetch_survey(
        sources=pd.read_csv(snakemake.input.sources),
        survey=Survey(**snakemake.params.survey),
        out_dir=manifest.parent,
        manifest_path=manifest,
        settings=FetchSettings(**snakemake.params.fetch),
    )
