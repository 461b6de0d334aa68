import torch

from rgmorph.figures.saliency import plot_saliency
from rgmorph.figures.workflow import figure_job

torch.set_num_threads(snakemake.threads)
figure_job(snakemake, lambda stem: plot_saliency(snakemake.input.checkpoints, snakemake.input.datasets,
                                                 snakemake.input.predictions, stem))
