"""Figure: the same sources in FIRST and NVSS after preprocessing, a few per class."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rgmorph.dataset import load_dataset
from rgmorph.figures.style import (
    DOUBLE_COLUMN_IN, field_extent_arcmin, label_width, save_figure, show_image, wrap_label,
)

MAX_COLUMNS = 6  # panels per row before the classes wrap onto further rows (a readable size at 6 pt)


def choose_sources(datasets: list[dict], per_class: int, seed: int) -> list[list[tuple[str, str]]]:
    """Per class of the first dataset: up to ``per_class`` (class name, source name) found in every dataset."""
    common = set(datasets[0]["names"])
    for dataset in datasets[1:]:
        common &= set(dataset["names"])
    reference = datasets[0]
    rng = np.random.default_rng(seed)
    chosen = []
    for label, class_name in enumerate(reference["class_names"]):
        names = sorted(name for name, lab in zip(reference["names"], reference["labels"]) if lab == label and name in common)
        picked = rng.choice(names, size=min(per_class, len(names)), replace=False)
        chosen.append([(class_name, name) for name in picked])
    return [sources for sources in chosen if sources]


def _blocks(chosen: list[list[tuple[str, str]]], per_class: int) -> list[list[tuple[str, str]]]:
    """The panels row by row: whole classes side by side, as many as fit in MAX_COLUMNS."""
    per_row = max(1, MAX_COLUMNS // max(per_class, 1))
    return [sum(chosen[start:start + per_row], []) for start in range(0, len(chosen), per_row)]


def plot_gallery(dataset_paths: list[str | Path], stem: str | Path, per_class: int = 3, seed: int = 0) -> None:
    """Preprocessed cutouts of the same sources in each survey (rows), grouped by class (columns); with more
    classes than fit across the page, the classes continue on further rows of all surveys."""
    datasets = [load_dataset(path) for path in dataset_paths]
    blocks = _blocks(choose_sources(datasets, per_class, seed), per_class)
    surveys = len(datasets)
    columns = max((len(block) for block in blocks), default=1)
    panel = DOUBLE_COLUMN_IN / columns
    prose, width = label_width(panel - 0.15, 6, 20, em=0.5), label_width(panel - 0.15, 6, 20)
    figure, axes = plt.subplots(surveys * len(blocks), columns, squeeze=False, constrained_layout=True,
                                figsize=(DOUBLE_COLUMN_IN, (panel * surveys * 1.15 + 0.25) * len(blocks) - 0.25))
    for b, block in enumerate(blocks):
        for row, dataset in enumerate(datasets):
            position = {name: index for index, name in enumerate(dataset["names"])}
            for column in range(columns):
                axis = axes[b * surveys + row, column]
                if column >= len(block):
                    axis.set_visible(False)
                    continue
                class_name, name = block[column]
                index = position[name]
                show_image(axis, dataset["images"][index], extent=field_extent_arcmin(dataset, index))
                if row == 0:
                    axis.set_title(f"{wrap_label(class_name, prose, 2)}\n{wrap_label(name, width, 2)}", fontsize=6)
                if column == 0:
                    axis.set_ylabel(f"{dataset['survey']}\nDec offset (')", fontsize=7)
                else:
                    axis.set_yticklabels([])
                if row == surveys - 1:
                    axis.set_xlabel("RA offset (')", fontsize=7)
                axis.tick_params(labelsize=6)
    figure.suptitle("Sample sources after preprocessing (same sources in each survey; offsets in arcmin; "
                    "square-root stretch)", fontsize=8)
    save_figure(figure, stem)
