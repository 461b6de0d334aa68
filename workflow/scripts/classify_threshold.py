import torch

from rgmorph.classify import load_models, ood_threshold
from rgmorph.dataset import load_dataset
from rgmorph.files import write_csv_atomic, write_json_atomic
from rgmorph.logs import logged

with logged(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    models = load_models(list(snakemake.input.checkpoints), snakemake.params.device)
    record, energies = ood_threshold(models, load_dataset(snakemake.input.dataset), snakemake.params.percentile,
                                     snakemake.params.batch_size)
    record["checkpoints"] = list(snakemake.input.checkpoints)
    record["dataset"] = snakemake.input.dataset
    write_csv_atomic(snakemake.output.energies, energies)
    write_json_atomic(snakemake.output.threshold, record)
    log.info("OOD threshold (energy, %gth percentile of %d validation sources): %.4f", record["percentile"],
             record["validation_sources"], record["threshold"])
