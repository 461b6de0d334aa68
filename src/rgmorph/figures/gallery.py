"""Figure: the same sources in FIRST and NVSS after preprocessing, a few per class."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rgmorph.dataset import load_dataset
from rgmorph.figures.style import DOUBLE_COLUMN_IN, field_extent_arcmin, save_figure, short_name, show_image


def plot_gallery(dataset_paths: list[str | Path], stem: str | Path, per_class: int = 3, seed: int = 0) -> None:
    """Preprocessed cutouts of the same sources in each survey (rows), grouped by class (columns)."""
    datasets = [load_dataset(path) for path in dataset_paths]
    common = set(datasets[0]["names"])
    for dataset in datasets[1:]:
        common &= set(dataset["names"])
    reference = datasets[0]
    rng = np.random.default_rng(seed)
    chosen = []
    for label, class_name in enumerate(reference["class_names"]):
        names = sorted(name for name, lab in zip(reference["names"], reference["labels"]) if lab == label and name in common)
        chosen += [(class_name, name) for name in rng.choice(names, size=min(per_class, len(names)), replace=False)]
    rows, columns = len(datasets), len(chosen)
    figure, axes = plt.subplots(rows, columns, figsize=(DOUBLE_COLUMN_IN, DOUBLE_COLUMN_IN / columns * rows * 1.15),
                                squeeze=False, constrained_layout=True)
    for row, dataset in enumerate(datasets):
        position = {name: index for index, name in enumerate(dataset["names"])}
        for column, (class_name, name) in enumerate(chosen):
            index = position[name]
            axis = axes[row, column]
            show_image(axis, dataset["images"][index], extent=field_extent_arcmin(dataset, index))
            if row == 0:
                axis.set_title(f"{class_name}\n{short_name(name)}", fontsize=6)
            if column == 0:
                axis.set_ylabel(f"{dataset['survey']}\nDec offset (')", fontsize=7)
            else:
                axis.set_yticklabels([])
            if row == rows - 1:
                axis.set_xlabel("RA offset (')", fontsize=7)
            axis.tick_params(labelsize=6)
    figure.suptitle("Sample sources after preprocessing (same sources in each survey; offsets in arcmin; "
                    "square-root stretch)", fontsize=8)
    save_figure(figure, stem)
