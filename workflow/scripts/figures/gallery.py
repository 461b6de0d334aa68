from rgmorph.figures.gallery import plot_gallery
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_gallery(snakemake.input.datasets, stem, snakemake.params.per_class,
                                                snakemake.params.seed))
