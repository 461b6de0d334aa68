from rgmorph.figures.confident_errors import plot_confident_errors
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_confident_errors(snakemake.input.predictions, snakemake.input.datasets, stem,
                                                         snakemake.params.per_survey))
