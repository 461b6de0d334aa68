"""Figure: test-split confusion matrix (K x K, any number of classes) of every variant, counts summed over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rgmorph.figures.runs import group_reports, grid, row_key
from rgmorph.figures.style import DOUBLE_COLUMN_IN, save_figure


def plot_confusion_matrices(metrics_paths: list[str | Path], stem: str | Path) -> None:
    """Counts summed over seeds, annotated with counts and row fractions (recall per class)."""
    groups = group_reports(metrics_paths)
    rows, columns = grid(groups)
    n_classes = max(len(runs[0][1]["class_names"]) for runs in groups.values()) if groups else 2
    # a panel wide enough for every class's cell and label, whatever the page width
    size = max(min(2.6, DOUBLE_COLUMN_IN / max(len(columns), 1)), 0.45 * n_classes + 1.0)
    figure, axes = plt.subplots(len(rows), len(columns), figsize=(size * len(columns) + 0.4, size * len(rows) + 0.3),
                                squeeze=False, constrained_layout=True)
    for axis in axes.flat:
        axis.set_visible(False)
    image = None
    for variant, runs in groups.items():
        axis = axes[rows.index(row_key(variant)), columns.index(variant.survey)]
        axis.set_visible(True)
        reports = [report for _, report, _ in runs]
        matrix = np.sum([report["confusion_matrix"] for report in reports], axis=0)
        fractions = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
        names = reports[0]["class_names"]
        image = axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(matrix):
            axis.text(j, i, f"{count}\n({fractions[i, j]:.2f})", ha="center", va="center",
                      color="white" if fractions[i, j] > 0.6 else "black", fontsize=8 if len(names) <= 3 else 6)
        upright = len(names) > 3 or max(map(len, names)) > 5  # long or many names would run together
        axis.set_xticks(range(len(names)), names, rotation=90 if upright else 0)
        axis.set_yticks(range(len(names)), names)
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        n_test = reports[0]["n_samples"]
        axis.set_title(f"{variant.label}\n{n_test} test sources x {len(runs)} seeds", fontsize=8, wrap=True)
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.6, label="fraction of the true class")
    save_figure(figure, stem, title="Confusion matrices on the test split, summed over seeds")
