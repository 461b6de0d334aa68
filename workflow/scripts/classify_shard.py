import json

import pandas as pd
import torch

from rgmorph.classify import classify_shard, load_models
from rgmorph.dataset import load_dataset
from rgmorph.files import write_csv_atomic
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    threshold = json.loads(open(snakemake.input.threshold).read())["threshold"]
    table = classify_shard(
        sources=pd.read_csv(snakemake.input.sources, dtype=str, keep_default_na=False).astype(
            {"ra_deg": float, "dec_deg": float}),
        manifest=pd.read_csv(snakemake.input.manifest, dtype={"name": str}),
        dataset=load_dataset(snakemake.input.dataset),
        models=load_models(list(snakemake.input.checkpoints), snakemake.params.device),
        threshold=threshold,
        batch_size=snakemake.params.batch_size,
    )
    write_csv_atomic(snakemake.output.table, table)
    log.info("shard %s: %d sources, %d classified", snakemake.wildcards.shard, len(table),
             int((table["status"] == "classified").sum()))
