"""Figure: test-split ROC curves of every variant; one line per seed.

Two classes: FRII (class 1) is the positive class, one curve per seed and their mean. More classes:
one-vs-rest, one colour per class (each seed thin, the seed mean thick), AUROC per class in the legend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from rgmorph.figures.runs import group_reports, grid, row_key
from rgmorph.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, SINGLE_COLUMN_IN, save_figure, wrap_label

LEGEND_DROP_IN = 0.65  # legend top below the axes: tick labels and a two-line x label above it


def mean_roc(curves: list[tuple[np.ndarray, np.ndarray]], grid_points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """Vertical average of ROC curves on a common false-positive-rate grid (step interpolation)."""
    fpr_grid = np.linspace(0, 1, grid_points)
    tprs = []
    for fpr, tpr in curves:
        # highest TPR reached at or below each FPR (ROC curves are monotone)
        index = np.searchsorted(fpr, fpr_grid, side="right") - 1
        tprs.append(tpr[np.clip(index, 0, len(tpr) - 1)])
    return fpr_grid, np.mean(tprs, axis=0)


def _binary_panel(axis, runs, positive_class: str | None) -> None:
    curves, areas = [], []
    for k, (seed, report, _) in enumerate(runs):
        fpr, tpr = np.asarray(report["roc_curve"]["fpr"]), np.asarray(report["roc_curve"]["tpr"])
        curves.append((fpr, tpr))
        areas.append(report["auroc"])
        axis.plot(fpr, tpr, color=OKABE_ITO[k % 7], alpha=0.55, linewidth=0.9, label=f"seed {seed}")
    if len(curves) > 1:
        fpr_grid, tpr_mean = mean_roc(curves)
        axis.plot(fpr_grid, tpr_mean, color="black", linewidth=1.6, label="mean")
    names = runs[0][1].get("class_names", ["FRI", "FRII"])
    positive_class = positive_class or names[1]
    negative = next(name for name in names if name != positive_class)
    axis.set_xlabel(f"false-positive rate ({negative} called {positive_class})")
    axis.set_ylabel(f"true-positive rate ({positive_class})")


def _one_vs_rest_panel(axis, runs) -> None:
    names = runs[0][1]["class_names"]
    for k, name in enumerate(names):
        colour = OKABE_ITO[(k + 1) % 8]
        curves = [(np.asarray(report["roc_curves"][name]["fpr"]), np.asarray(report["roc_curves"][name]["tpr"]))
                  for _, report, _ in runs]
        for fpr, tpr in curves:
            axis.plot(fpr, tpr, color=colour, alpha=0.35 if len(curves) > 1 else 0.9, linewidth=0.8)
        area = np.mean([report[f"auroc_{name}"] for _, report, _ in runs])
        fpr_grid, tpr_mean = mean_roc(curves) if len(curves) > 1 else curves[0]
        axis.plot(fpr_grid, tpr_mean, color=colour, linewidth=1.6, label=wrap_label(f"{name} vs rest ({area:.3f})", 40))
    axis.set_xlabel("false-positive rate (other classes\ncalled the class)")
    axis.set_ylabel("true-positive rate (the class)")


def _legend(axis, one_vs_rest: bool) -> None:
    if not one_vs_rest:
        axis.legend(frameon=False, loc="lower right", fontsize=6)
        return
    # below the x label: one entry per class would cover the curves inside the axes
    below = matplotlib.transforms.offset_copy(axis.transAxes, fig=axis.figure, y=-LEGEND_DROP_IN, units="inches")
    axis.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, fontsize=6)


def _title(variant, kind: str, areas: list[float], runs, room_in: float) -> str:
    std = np.std(areas, ddof=1) if len(areas) > 1 else 0.0
    score = f"{kind} {np.mean(areas):.3f} $\\pm$ {std:.3f}"
    counts = f"({len(runs)} seeds, {runs[0][1]['n_samples']} test)"
    # about 18 characters an inch at 8 pt ('$\\pm$' draws as one): the counts go below if the title would
    # reach the next panel's
    separator = " " if len(score) + len(counts) - 4 <= room_in * 18 else "\n"
    return f"{variant.label}\n{score}{separator}{counts}"


def _panel(axis, variant, runs, positive_class: str | None, room_in: float) -> None:
    """``room_in``: the width its title may take, the page's width over the panels across."""
    one_vs_rest = "roc_curves" in runs[0][1]
    if one_vs_rest:
        _one_vs_rest_panel(axis, runs)
    else:
        _binary_panel(axis, runs, positive_class)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
    areas = [report["auroc"] for _, report, _ in runs]
    kind = "mean one-vs-rest AUROC" if one_vs_rest else "AUROC"
    axis.set_title(_title(variant, kind, areas, runs, room_in), fontsize=8)
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.set_aspect("equal")
    _legend(axis, one_vs_rest)
    axis.grid(alpha=0.3)


def plot_roc_curves(metrics_paths: list[str | Path], stem: str | Path, positive_class: str | None = None) -> None:
    """From each run's metrics.json (a predictions.csv path stands for the metrics.json beside it).

    ``positive_class`` names the binary studies' positive class (default: the second, FRII)."""
    metrics_paths = [Path(path).with_name("metrics.json") if Path(path).name == "predictions.csv" else path
                     for path in metrics_paths]
    groups = group_reports(metrics_paths)
    rows, columns = grid(groups)
    size = min(2.8, DOUBLE_COLUMN_IN / max(len(columns), 1))
    # a one-vs-rest panel's legend (a line per class and chance) and second title line below it
    entries = max((len(runs[0][1]["class_names"]) + 1 for runs in groups.values() if "roc_curves" in runs[0][1]),
                  default=0)
    extra = 0.14 * entries + 0.6 if entries else 0.0
    width = max(size * len(columns), SINGLE_COLUMN_IN)  # a journal column at least, for the titles
    figure, axes = plt.subplots(len(rows), len(columns), squeeze=False, constrained_layout=True,
                                figsize=(width, (size + extra) * len(rows) + 0.2))
    for axis in axes.flat:
        axis.set_visible(False)
    one_vs_rest, names = False, ["FRI", "FRII"]
    for variant, runs in groups.items():
        axis = axes[rows.index(row_key(variant)), columns.index(variant.survey)]
        axis.set_visible(True)
        _panel(axis, variant, runs, positive_class, width / len(columns))
        one_vs_rest = one_vs_rest or "roc_curves" in runs[0][1]
        names = runs[0][1].get("class_names", names)
    title = "one-vs-rest per class" if one_vs_rest else f"{positive_class or names[1]} positive"
    save_figure(figure, stem, title=f"ROC curves on the test split, {title}")
