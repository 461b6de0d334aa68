"""Figure: every model variant side by side, one point per seed and the mean +/- std, per survey."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rgmorph.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, SURVEY_COLOURS, empty_state, save_figure, wrap_label
from rgmorph.metrics import class_names_from_columns

PANELS = [("accuracy", "test accuracy (fraction)"), ("auroc", "test AUROC (FRII positive)"),
          ("tpr10_FRII", "test TPR10 (FRII positive)")]
# more than two classes: AUROC is the mean of the one-vs-rest AUROCs
MULTICLASS_PANELS = [("accuracy", "test accuracy (fraction)"), ("auroc", "test AUROC (one-vs-rest mean)"),
                     ("macro_f1", "test macro-F1")]
MARKERS = ["o", "s", "^", "D", "v", "P"]


def default_panels(columns) -> list[tuple[str, str]]:
    """PANELS for a two-class runs table (class 1 positive), MULTICLASS_PANELS for more classes."""
    names = class_names_from_columns(columns)
    if len(names) <= 2:
        positive = names[1] if len(names) == 2 else "FRII"
        return [(metric.replace("FRII", positive), label.replace("FRII", positive)) for metric, label in PANELS]
    return MULTICLASS_PANELS


def plot_variant_comparison(runs_path: str | Path, stem: str | Path, panels=None) -> None:
    runs = pd.read_csv(runs_path)
    panels = default_panels(runs.columns) if panels is None else panels
    runs = runs[runs["kind"] == "scratch"]
    models = sorted(runs["model"].unique())
    surveys = sorted(runs["survey"].unique(), key=lambda s: (s not in SURVEY_COLOURS, s))
    figure, axes = plt.subplots(1, len(panels), figsize=(DOUBLE_COLUMN_IN, 2.6), constrained_layout=True, squeeze=False)
    width = 0.7 / max(len(surveys), 1)
    rng = np.random.default_rng(0)  # jitter only, so that overlapping seeds stay visible
    for axis, (metric, label) in zip(axes[0], panels):
        if runs.empty:
            empty_state(axis, "no from-scratch runs")
            continue
        for s, survey in enumerate(surveys):
            colour = SURVEY_COLOURS.get(survey, OKABE_ITO[(s + 2) % 8])
            for m, model in enumerate(models):
                values = runs[(runs["model"] == model) & (runs["survey"] == survey)][metric].to_numpy(float)
                if values.size == 0:
                    continue
                centre = m + (s - (len(surveys) - 1) / 2) * width
                jitter = rng.uniform(-width / 5, width / 5, size=values.size)
                axis.scatter(centre + jitter, values, s=14, color=colour, marker=MARKERS[s % len(MARKERS)], alpha=0.6,
                             edgecolor="none", label=f"{survey} (one seed)" if m == 0 else None)
                std = values.std(ddof=1) if values.size > 1 else 0.0
                axis.errorbar(centre, values.mean(), yerr=std, fmt="_", markersize=14, color="black", capsize=3,
                              linewidth=1.2, label="mean $\\pm$ std" if (m == 0 and s == 0) else None)
        axis.set_xticks(range(len(models)), models, rotation=30 if len(models) > 3 else 0, ha="right" if len(models) > 3 else "center")
        # a label longer than the axes are tall would run into the title: its parenthesis goes below
        axis.set_ylabel(label if len(label) <= 26 else wrap_label(label.replace(" (", "\n(", 1), 26))
        axis.set_xlim(-0.6, len(models) - 0.4)
        axis.grid(alpha=0.3, axis="y")
    axes[0, 0].set_xlabel("model")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
    seeds = runs.groupby(["model", "survey"]).size()
    seed_text = "/".join(str(n) for n in sorted(set(seeds))) if len(seeds) else "0"
    figure.suptitle(f"Model variants trained from scratch, test split ({seed_text} seeds each)")
    save_figure(figure, stem)
