from rgmorph.figures.variant_comparison import plot_variant_comparison
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_variant_comparison(snakemake.input.runs, stem))
