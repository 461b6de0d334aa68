"""One entry point for the figure rules: the rule's name picks the figure function."""

from pathlib import Path

from rgmorph import figures
from rgmorph.logs import logged

with logged(snakemake.log[0]):
    stem = Path(snakemake.output[0]).with_suffix("")
    name = snakemake.rule.removeprefix("figure_")
    if name == "gallery":
        figures.plot_gallery(snakemake.input.datasets, stem, snakemake.params.per_class, snakemake.params.seed)
    elif name == "preprocessing":
        figures.plot_preprocessing_steps(snakemake.input.dataset, snakemake.input.manifest,
                                         Path(snakemake.input.manifest).parent, stem, snakemake.params.sigma)
    elif name == "augmentation":
        figures.plot_augmentation_examples(snakemake.input.dataset, stem, snakemake.params.augment, snakemake.params.seed)
    elif name == "learning_curves":
        figures.plot_learning_curves(snakemake.input.histories, stem)
    elif name == "confusion_matrices":
        figures.plot_confusion_matrices(snakemake.input.metrics, stem)
    elif name == "roc_curves":
        figures.plot_roc_curves(snakemake.input.predictions, stem)
    else:
        raise ValueError(f"no figure function for rule {snakemake.rule}")
