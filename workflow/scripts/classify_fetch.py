import os

import pandas as pd

from rgmorph.classify import fetch_shard
from rgmorph.fetch import SKYVIEW_URL_ENVIRONMENT_VARIABLE, FetchSettings, Survey, mirror_setting
from rgmorph.logs import logged

# As workflow/scripts/fetch.py: options read here (they do not change a cutout's bytes), the mirror and
# SkyView URL overridable by the same environment variables.
options = dict(snakemake.config["classify"]["fetch"])
options["mirror_dir"] = mirror_setting(options.get("mirror_dir"))
options["skyview_url"] = os.environ.get(SKYVIEW_URL_ENVIRONMENT_VARIABLE, options["skyview_url"])

with logged(snakemake.log[0]):
    fetch_shard(
        sources=pd.read_csv(snakemake.input.sources, dtype={"name": str}, keep_default_na=False),
        survey=Survey(**snakemake.params.survey),
        manifest_path=snakemake.output.manifest,
        settings=FetchSettings(**options),
    )
