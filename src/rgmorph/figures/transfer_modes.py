"""Figure: test accuracy of scratch and each transfer mode, one panel per model and direction.

One point per seed, the same seed joined by a thin line across settings (the runs pair seed by seed,
rgmorph.transfer_modes), and the mean over seeds as a black bar.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from rgmorph.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, empty_state, save_figure
from rgmorph.transfer_modes import SETTINGS, directions, per_seed, read_runs

TICK_LABELS = {"scratch": "from\nscratch", "frozen": "frozen\n(pre-trained)", "finetune": "all layers\nfine-tuned",
               "random_frozen": "frozen\n(random init)"}
COLOURS = dict(zip(SETTINGS, OKABE_ITO))
MARKERS = dict(zip(SETTINGS, "osD^"))


def _panel(axis, settings: dict, metric: str) -> None:
    shown = [name for name in SETTINGS if name in settings]
    seeds = sorted(set().union(*(settings[name].index for name in shown)))
    for seed in seeds:  # the pairing: one seed across the settings it has
        x = [k for k, name in enumerate(shown) if seed in settings[name].index]
        axis.plot(x, [settings[shown[k]].loc[seed, metric] for k in x], color="0.75", linewidth=0.7, zorder=1)
    for k, name in enumerate(shown):
        values = settings[name][metric].to_numpy(float)
        axis.scatter(np.full(values.size, k), values, s=18, color=COLOURS[name], marker=MARKERS[name],
                     edgecolor="white", linewidth=0.4, zorder=2, label="one seed" if k == 0 else None)
        axis.plot([k - 0.25, k + 0.25], [values.mean()] * 2, color="black", linewidth=1.8, zorder=3,
                  label="mean over seeds" if k == 0 else None)
    axis.set_xticks(range(len(shown)), [TICK_LABELS[name] for name in shown])
    axis.set_xlim(-0.5, len(shown) - 0.5)
    axis.grid(alpha=0.3, axis="y")


def plot_transfer_modes(runs_path: str | Path, stem: str | Path, metric: str = "accuracy") -> None:
    runs = read_runs(runs_path)
    panels = directions(runs)
    models = list(dict.fromkeys(model for model, _, _ in panels)) or ["-"]
    ways = list(dict.fromkeys((source, target) for _, source, target in panels)) or [("-", "-")]
    width = min(DOUBLE_COLUMN_IN, 3.0 * len(ways) + 0.4)
    figure, axes = plt.subplots(len(models), len(ways), figsize=(width, 2.6 * len(models) + 0.5), squeeze=False,
                                constrained_layout=True, sharey=True)
    for row, model in enumerate(models):
        for column, (source, target) in enumerate(ways):
            axis = axes[row, column]
            if (model, source, target) not in panels:
                empty_state(axis, "no transfer runs")
                continue
            _panel(axis, per_seed(runs, model, source, target), metric)
            axis.set_title(f"{model}: {source} \u2192 {target} (tested on {target})")
            if row == len(models) - 1:
                axis.set_xlabel("how the target-survey network was trained")
            if column == 0:
                axis.set_ylabel(f"test {metric} (fraction)" if metric == "accuracy" else f"test {metric.upper()}")
    axes[0, 0].legend(frameon=False, fontsize=7, loc="lower left")
    figure.suptitle("Transfer modes against training from scratch, paired by seed (test split)")
    save_figure(figure, stem)
