from rgmorph.figures.confounds import plot_confounds
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_confounds(snakemake.input.table, stem))
