from rgmorph.figures.learning_curves import plot_learning_curves
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_learning_curves(snakemake.input.histories, stem))
