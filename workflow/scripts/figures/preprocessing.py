from pathlib import Path

from rgmorph.figures.preprocessing import plot_preprocessing_steps
from rgmorph.figures.workflow import figure_job

figure_job(snakemake, lambda stem: plot_preprocessing_steps(snakemake.input.dataset, snakemake.input.manifest,
                                                            Path(snakemake.input.manifest).parent, stem,
                                                            snakemake.params.sigma))
