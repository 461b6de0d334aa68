from rgmorph.figures.roc_curves import plot_roc_curves
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_roc_curves(snakemake.input.metrics, stem))
