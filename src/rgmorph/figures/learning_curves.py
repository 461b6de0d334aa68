"""Figure: loss and accuracy per epoch, training vs validation, mean over seeds with a +/- 1 std band."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rgmorph.figures.runs import group_paths
from rgmorph.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, save_figure, wrap_label


def plot_learning_curves(history_paths: list[str | Path], stem: str | Path) -> None:
    groups = group_paths(history_paths)
    figure, axes = plt.subplots(len(groups), 2, figsize=(DOUBLE_COLUMN_IN, 2.1 * len(groups) + 0.3), squeeze=False,
                                constrained_layout=True)
    for row, (variant, runs) in enumerate(groups.items()):
        histories = [pd.read_csv(path) for _, path in runs]
        epochs = min(len(history) for history in histories)
        x = np.arange(1, epochs + 1)
        for column, metric in enumerate(("loss", "accuracy")):
            axis = axes[row, column]
            for colour, part in zip(OKABE_ITO, ("train", "val")):
                values = np.stack([history[f"{part}_{metric}"].to_numpy()[:epochs] for history in histories])
                mean, std = values.mean(0), values.std(0)
                axis.plot(x, mean, color=colour, label={"train": "training", "val": "validation"}[part],
                          linestyle="-" if part == "train" else "--", marker="o" if epochs == 1 else None,
                          markersize=4)  # one epoch (an SVM) draws no line: a marker shows the value
                axis.fill_between(x, mean - std, mean + std, color=colour, alpha=0.25, linewidth=0)
            best = [int(history.loc[history["best"].astype(bool), "epoch"].max()) for history in histories
                    if "best" in history and history["best"].astype(bool).any()]
            for epoch in best:
                axis.axvline(epoch, color="grey", linewidth=0.6, linestyle=":")
            axis.set_xlabel("epoch")
            axis.set_ylabel("cross-entropy loss" if metric == "loss" else "accuracy (fraction)")
            # 50 characters fill a half-page panel at 9 pt: the two titles of a long variant stay apart
            axis.set_title(wrap_label(f"{variant.label} ({len(runs)} seed{'s' if len(runs) != 1 else ''})", 50))
            axis.grid(alpha=0.3)
        axes[row, 0].legend(frameon=False)
    figure.suptitle("Learning curves: mean over seeds, band $\\pm$1 std; dotted: kept (best validation) epoch")
    save_figure(figure, stem)
