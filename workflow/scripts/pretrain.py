import pandas as pd

from rgmorph import provenance
from rgmorph.files import write_csv_atomic
from rgmorph.logs import logged
from rgmorph.pretrain import PretrainSettings, build_pool, pool_images, pool_record, simclr, write_pretrained

with logged(snakemake.log[0]):
    import torch

    torch.set_num_threads(snakemake.threads)
    settings = PretrainSettings.from_mapping(snakemake.params.settings)
    sources = pd.read_csv(snakemake.input.sources, dtype={"name": str})
    pool, dropped = build_pool(snakemake.params.mirrors, snakemake.params.skyview_name, sources,
                               snakemake.params.exclude, snakemake.params.radius)
    images = pool_images(pool, snakemake.params.preprocess)
    write_csv_atomic(snakemake.output.pool, pool)
    record = pool_record(pool, dropped, snakemake.params.radius)
    histories = []
    for seed, path in zip(snakemake.params.seeds, snakemake.output.checkpoints):
        network, history = simclr(snakemake.wildcards.model, snakemake.params.model_options,
                                  len(snakemake.params.class_names), images, seed, settings)
        write_pretrained(path, network, model_name=snakemake.wildcards.model,
                         model_options=snakemake.params.model_options, class_names=snakemake.params.class_names,
                         image_size=images.shape[-1], survey=snakemake.wildcards.survey, seed=seed,
                         pixel_scale_arcsec=None, settings=settings, pool=record, history=history)
        histories += [{"seed": seed, **row} for row in history]
    write_csv_atomic(snakemake.output.history, pd.DataFrame(histories))
    provenance.from_snakemake(snakemake, "model", outputs=list(snakemake.output))
