from rgmorph.figures.transfer_comparison import plot_transfer_comparison
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_transfer_comparison(snakemake.input.runs, stem))
