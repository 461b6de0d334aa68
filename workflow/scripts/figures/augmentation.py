from rgmorph.figures.augmentation import plot_augmentation_examples
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_augmentation_examples(snakemake.input.dataset, stem, snakemake.params.augment,
                                                              snakemake.params.seed))
