from rgmorph.figures.confusion_matrices import plot_confusion_matrices
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_confusion_matrices(snakemake.input.metrics, stem))
