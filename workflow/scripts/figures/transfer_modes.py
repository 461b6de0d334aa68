from rgmorph.figures.transfer_modes import plot_transfer_modes
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_transfer_modes(snakemake.input.runs, stem))
