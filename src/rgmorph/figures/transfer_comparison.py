"""Figure: transfer learning against training from scratch, per test survey."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rgmorph.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, empty_state, save_figure
from rgmorph.layout import Variant
from rgmorph.metrics import class_names_from_columns

PANELS = [("accuracy", "test accuracy (fraction)"), ("auroc", "test AUC (FRII positive)")]
MULTICLASS_PANELS = [("accuracy", "test accuracy (fraction)"), ("auroc", "test AUC (one-vs-rest mean)")]
KIND_COLOURS = {"scratch": OKABE_ITO[0], "transfer": OKABE_ITO[1]}
KIND_MARKERS = {"scratch": "o", "transfer": "s"}
NO_TRANSFER = "No transfer-learning runs configured:\nonly the from-scratch baselines are shown"


def default_panels(columns) -> list[tuple[str, str]]:
    """PANELS for a two-class runs table (class 1 positive), MULTICLASS_PANELS for more classes."""
    names = class_names_from_columns(columns)
    if len(names) > 2:
        return MULTICLASS_PANELS
    return [(metric, label.replace("FRII", names[1] if names else "FRII")) for metric, label in PANELS]


def _setting(row) -> str:
    return f"{row['model']}\n{Variant.from_row(row).setting}"


def plot_transfer_comparison(runs_path: str | Path, stem: str | Path, panels=None) -> None:
    runs = pd.read_csv(runs_path, keep_default_na=False, na_values=[""],
                       dtype={"kind": str, "pretrained_on": str, "model": str, "survey": str, "trained_on": str,
                              "mode": str})
    panels = default_panels(runs.columns) if panels is None else panels
    runs["pretrained_on"] = runs["pretrained_on"].fillna("")
    has_transfer = bool((runs["kind"] == "transfer").any())
    if has_transfer:  # only the models that have a transfer variant, with their baselines
        keys = set(zip(runs.loc[runs["kind"] == "transfer", "model"], runs.loc[runs["kind"] == "transfer", "survey"]))
        runs = runs[[(m, s) in keys for m, s in zip(runs["model"], runs["survey"])]]
    runs = runs.assign(setting=[_setting(row) for _, row in runs.iterrows()],
                       rank=(runs["kind"] == "transfer").astype(int))
    surveys = sorted(runs["survey"].unique(), key=lambda s: ({"FIRST": 0, "NVSS": 1}.get(s, 2), s)) or ["-"]
    figure, axes = plt.subplots(len(panels), len(surveys), figsize=(DOUBLE_COLUMN_IN, 2.3 * len(panels) + 0.4),
                                squeeze=False, constrained_layout=True, sharey="row")
    rng = np.random.default_rng(0)
    for column, survey in enumerate(surveys):
        part = runs[runs["survey"] == survey].sort_values(["model", "rank", "setting"])
        settings = list(dict.fromkeys(part["setting"]))
        for row, (metric, label) in enumerate(panels):
            axis = axes[row, column]
            if part.empty:
                empty_state(axis, "no runs")
                continue
            for x, setting in enumerate(settings):
                chosen = part[part["setting"] == setting]
                kind = chosen["kind"].iloc[0]
                values = chosen[metric].to_numpy(float)
                axis.scatter(x + rng.uniform(-0.08, 0.08, values.size), values, s=16, alpha=0.6, edgecolor="none",
                             color=KIND_COLOURS[kind], marker=KIND_MARKERS[kind],
                             label="one seed" if x == 0 else None)
                std = values.std(ddof=1) if values.size > 1 else 0.0
                axis.errorbar(x, values.mean(), yerr=std, fmt="_", markersize=16, color="black", capsize=3,
                              label="mean $\\pm$ std" if x == 0 else None)
            axis.set_xticks(range(len(settings)), settings if row == len(panels) - 1 else [""] * len(settings),
                            fontsize=7)
            axis.set_xlim(-0.6, len(settings) - 0.4)
            axis.grid(alpha=0.3, axis="y")
            if column == 0:
                axis.set_ylabel(label)
            if row == 0:
                axis.set_title(f"tested on {survey}")
    axes[0, 0].legend(frameon=False, fontsize=7, loc="best")
    if not has_transfer:
        figure.supxlabel(NO_TRANSFER.replace("\n", " "), fontsize=8, color="0.2",
                         bbox={"boxstyle": "round", "facecolor": "#F0E442", "alpha": 0.35, "edgecolor": "0.5"})
    seeds = runs.groupby(["setting", "survey"]).size()
    seed_text = "/".join(str(n) for n in sorted(set(seeds))) if len(seeds) else "0"
    figure.suptitle(f"Transfer learning vs training from scratch, test split ({seed_text} seeds per setting)")
    save_figure(figure, stem)
