"""Figure: the test sources the models get most confidently wrong, averaged over seeds, with names."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rgmorph.dataset import load_dataset
from rgmorph.evaluate import read_predictions
from rgmorph.figures.runs import variant_from_path
from rgmorph.figures.style import (
    DOUBLE_COLUMN_IN, empty_state, field_extent_arcmin, label_width, save_figure, show_image, wrap_label,
)


def confident_errors(prediction_paths: list[str | Path], class_names: list[str]) -> pd.DataFrame:
    """Per source: mean over seeds of P(true class), and in how many seeds it is misclassified; wrong ones first."""
    frames = []
    for path in prediction_paths:
        frame = read_predictions(path, class_names)
        probability = frame[[f"probability_{name}" for name in class_names]].to_numpy()
        frame = frame.assign(p_true=probability[np.arange(len(frame)), frame["label"].to_numpy()],
                             wrong=(frame["predicted"] != frame["label"]).astype(int))
        frames.append(frame[["name", "label", "class_name", "p_true", "wrong"]])
    joined = pd.concat(frames)
    summary = joined.groupby(["name", "label", "class_name"], as_index=False).agg(
        p_true=("p_true", "mean"), wrong=("wrong", "sum"), seeds=("wrong", "size"))
    return summary[summary["p_true"] < 0.5].sort_values(["p_true", "name"]).reset_index(drop=True)


def _probability_text(item, class_names) -> str:
    """Two classes: the mean probability of the other class; more: that of the true class."""
    if len(class_names) == 2:
        return f"P({class_names[1 - int(item['label'])]}) = {1 - item['p_true']:.2f}"
    return f"P({item['class_name']}) = {item['p_true']:.2f}"


def _title(item, class_names, panel_in: float) -> str:
    """Source name (at most two lines), true class and probability (one line if they fit), seeds wrong."""
    prose, name = label_width(panel_in, 6, 24, em=0.5), label_width(panel_in, 6, 20)
    truth, probability = f"true {item['class_name']}", _probability_text(item, class_names)
    verdict = f"{truth}, {probability}"
    if len(verdict) > prose:
        if len(class_names) > 2:  # the class is named on the line above: do not name it twice
            probability = f"P(true class) = {item['p_true']:.2f}"
        verdict = f"{wrap_label(truth, prose)},\n{wrap_label(probability, prose)}"
    return (f"{wrap_label(str(item['name']), name, 2)}\n{verdict}\n"
            f"wrong in {int(item['wrong'])}/{int(item['seeds'])} seeds")


def plot_confident_errors(prediction_paths: list[str | Path], dataset_paths: list[str | Path], stem: str | Path,
                          per_survey: int = 6) -> None:
    datasets = {}
    for path in dataset_paths:
        dataset = load_dataset(path)
        datasets[dataset["survey"]] = dataset
    by_survey: dict[str, list[Path]] = {}
    model = None
    for path in map(Path, prediction_paths):
        variant, _ = variant_from_path(path)
        model = variant.model
        by_survey.setdefault(variant.survey, []).append(path)
    surveys = [survey for survey in datasets if survey in by_survey]
    errors = {survey: confident_errors(by_survey[survey], datasets[survey]["class_names"]) for survey in surveys}
    panel = DOUBLE_COLUMN_IN / per_survey - 0.15  # less the row label and the gaps
    titles = {survey: [_title(item, datasets[survey]["class_names"], panel)
                       for _, item in errors[survey].head(per_survey).iterrows()] for survey in surveys}
    lines = max((title.count("\n") + 1 for shown in titles.values() for title in shown), default=3)
    row_height = DOUBLE_COLUMN_IN / per_survey + 0.55 + 0.1 * max(lines - 3, 0)  # room for each title line
    figure, axes = plt.subplots(len(surveys), per_survey, figsize=(DOUBLE_COLUMN_IN, row_height * len(surveys) + 0.3),
                                squeeze=False, constrained_layout=True)
    for row, survey in enumerate(surveys):
        dataset = datasets[survey]
        position = {str(name): index for index, name in enumerate(dataset["names"])}
        for column in range(per_survey):
            axis = axes[row, column]
            if column >= len(titles[survey]):
                empty_state(axis, "no further\nmisclassified\nsources" if column else "no misclassified\nsources")
                continue
            index = position[str(errors[survey].iloc[column]["name"])]
            show_image(axis, dataset["images"][index], extent=field_extent_arcmin(dataset, index), ticks=False)
            axis.set_title(titles[survey][column], fontsize=6)
        extent = field_extent_arcmin(dataset, 0)
        axes[row, 0].set_ylabel(f"{survey}\n{extent[1] * 2:.1f} arcmin field", fontsize=7)
    seeds = max((len(paths) for paths in by_survey.values()), default=0)
    figure.suptitle(f"Most confidently misclassified test sources, {model}, probability averaged over {seeds} seeds "
                    "(square-root stretch)", fontsize=8)
    save_figure(figure, stem)
