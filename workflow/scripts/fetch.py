import os
from pathlib import Path

import pandas as pd

from rgmorph.fetch import SKYVIEW_URL_ENVIRONMENT_VARIABLE, FetchSettings, Survey, fetch_survey, mirror_setting
from rgmorph.logs import logged

# Fetch options are read here, not declared as rule params: retries, timeouts and the mirror's
# location do not change a cutout's bytes (its sha256 is checked), so changing them must not
# trigger retraining downstream.
options = dict(snakemake.config["fetch"])
options["mirror_dir"] = mirror_setting(options["mirror_dir"])  # $RGMORPH_SKYVIEW_MIRROR: one dir, or several joined by ':'
options["skyview_url"] = os.environ.get(SKYVIEW_URL_ENVIRONMENT_VARIABLE, options["skyview_url"])

with logged(snakemake.log[0]):
    manifest = Path(snakemake.output.manifest)
    fetch_survey(
        sources=pd.read_csv(snakemake.input.sources),
        survey=Survey(**snakemake.params.survey),
        out_dir=manifest.parent,
        manifest_path=manifest,
        settings=FetchSettings(**options),
    )
