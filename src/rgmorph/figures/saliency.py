"""Figure: occlusion saliency maps for correctly and wrongly classified test sources.

Occlusion (Zeiler & Fergus 2014) needs nothing from the architecture, so it works for every
variant: a square patch is set to 0 (empty sky after preprocessing) at each position, and the
map is the drop in the log-odds of the predicted class (its logit minus the log-sum-exp of the
others), averaged over the patches covering each pixel. Log-odds rather than probability, so that
a confident (saturated, P ~ 1) decision still shows where its evidence lies. Positive (orange)
pixels support the model's decision; negative (purple) argue against it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from rgmorph.dataset import load_dataset
from rgmorph.evaluate import read_predictions
from rgmorph.figures.style import (
    DIVERGING_COLOURMAP, DOUBLE_COLUMN_IN, empty_state, field_extent_arcmin, label_width, save_figure, show_image,
    wrap_label,
)

MAX_COLUMNS = 6  # panels per row; beyond, the correct and the wrong examples take a row pair each


def _log_odds(logits: torch.Tensor, target: int) -> torch.Tensor:
    others = torch.cat([logits[:, :target], logits[:, target + 1:]], dim=1)
    return logits[:, target] - torch.logsumexp(others, dim=1)


@torch.no_grad()
def occlusion_map(model: torch.nn.Module, image: np.ndarray, target: int, patch: int | None = None,
                  stride: int | None = None, batch_size: int = 64) -> np.ndarray:
    """(H, W) drop in the log-odds of ``target`` when a ``patch`` x ``patch`` square over each pixel is zeroed."""
    model.eval()
    height, width = image.shape
    patch = patch or max(4, height // 8)
    stride = stride or max(1, patch // 2)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    base = _log_odds(model(tensor), target)[0].item()
    tops = list(range(0, height - patch + 1, stride))
    lefts = list(range(0, width - patch + 1, stride))
    if tops[-1] != height - patch:
        tops.append(height - patch)
    if lefts[-1] != width - patch:
        lefts.append(width - patch)
    positions = [(top, left) for top in tops for left in lefts]
    heat = np.zeros((height, width), dtype=np.float64)
    counts = np.zeros((height, width), dtype=np.float64)
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        occluded = tensor.repeat(len(chunk), 1, 1, 1)
        for k, (top, left) in enumerate(chunk):
            occluded[k, 0, top:top + patch, left:left + patch] = 0.0
        log_odds = _log_odds(model(occluded), target).numpy()
        for (top, left), value in zip(chunk, log_odds):
            heat[top:top + patch, left:left + patch] += base - value
            counts[top:top + patch, left:left + patch] += 1
    return heat / np.maximum(counts, 1)


def choose_examples(predictions: pd.DataFrame, class_names: list[str]) -> list[tuple[str, pd.Series | None]]:
    """Per class: the most confident correct and the most confident wrong test source (None if there is none)."""
    chosen = []
    probability = predictions[[f"probability_{name}" for name in class_names]].to_numpy()
    predictions = predictions.assign(confidence=probability.max(1))
    for outcome in ("correct", "wrong"):
        for label, name in enumerate(class_names):
            of_class = predictions[predictions["label"] == label]
            subset = of_class[(of_class["predicted"] == label) == (outcome == "correct")]
            row = subset.sort_values(["confidence", "name"], ascending=[False, True]).iloc[0] if len(subset) else None
            chosen.append((f"{outcome}: true {name}", row))
    return chosen


def _caption(title: str, row: pd.Series | None, class_names: list[str], panel_in: float) -> str:
    """Outcome and true class, source name (at most two lines), probability; wrapped to the panel's width."""
    prose, name = label_width(panel_in, 6, 22, em=0.5), label_width(panel_in, 6, 20)
    if row is None:
        return wrap_label(title, prose)
    predicted_name = class_names[int(row["predicted"])]
    return (f"{wrap_label(title, prose)}\n{wrap_label(str(row['name']), name, 2)}\n"
            + wrap_label(f"P({predicted_name}) = {row['probability_' + predicted_name]:.2f}", prose))


def _survey_examples(checkpoint_path, dataset_path, prediction_path, patch) -> tuple[str, dict, list[str], list]:
    """(survey, checkpoint, class names, [(title, prediction row, image, occlusion map, extent)]); all but
    the title are None where the test split has no such source."""
    from rgmorph.train import load_checkpoint

    model, checkpoint = load_checkpoint(checkpoint_path)
    dataset = load_dataset(dataset_path)
    predictions = read_predictions(prediction_path, dataset["class_names"])
    position = {str(name): index for index, name in enumerate(dataset["names"])}
    examples = []
    for title, row in choose_examples(predictions, dataset["class_names"]):
        if row is None:
            examples.append((title, None, None, None, None))
            continue
        index = position[str(row["name"])]
        image = dataset["images"][index]
        heat = occlusion_map(model, image, int(row["predicted"]), patch)
        examples.append((title, row, image, heat, field_extent_arcmin(dataset, index)))
    return dataset["survey"], checkpoint, dataset["class_names"], examples


def _draw_survey(figure, axes, first_row: int, survey: str, examples: list) -> None:
    """The survey's examples, wrapped into row pairs (image above its occlusion map) of ``axes``' width."""
    columns = axes.shape[1]
    # one symmetric scale per survey: the models' sensitivity differs a lot between surveys
    limit = max([np.abs(e[2]).max() for e in examples if e[2] is not None] + [1e-6])
    norm = matplotlib.colors.TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)
    field = next((f"\n{e[3][1] * 2:.1f} arcmin" for e in examples if e[3] is not None), "")
    for pair in range(-(-len(examples) // columns)):
        row, mappable = first_row + 2 * pair, None
        for column in range(columns):
            top, bottom = axes[row, column], axes[row + 1, column]
            k = pair * columns + column
            if k >= len(examples):
                top.set_visible(False)
                bottom.set_visible(False)
                continue
            caption, image, heat, extent = examples[k]
            top.set_title(caption, fontsize=6)
            if image is None:
                empty_state(top, "none in the\ntest split")
                empty_state(bottom, "")
                continue
            show_image(top, image, extent=extent, ticks=False)
            mappable = bottom.imshow(heat, origin="lower", cmap=DIVERGING_COLOURMAP, norm=norm, extent=extent)
            bottom.contour(image, levels=[0.05], colors="black", linewidths=0.4, origin="lower", extent=extent)
            bottom.set_xticks([])
            bottom.set_yticks([])
        axes[row, 0].set_ylabel(f"{survey}\nimage (sqrt){field}", fontsize=7)
        axes[row + 1, 0].set_ylabel(f"{survey}\nocclusion map", fontsize=7)
        if mappable is not None:
            bar = figure.colorbar(mappable, ax=axes[row + 1, :], shrink=0.9, aspect=12)
            bar.set_label("drop in log-odds of the\npredicted class if occluded", fontsize=7)
            bar.ax.tick_params(labelsize=6)


def plot_saliency(checkpoint_paths: list[str | Path], dataset_paths: list[str | Path],
                  prediction_paths: list[str | Path], stem: str | Path, patch: int | None = None) -> None:
    panels = [_survey_examples(*paths, patch) for paths in zip(checkpoint_paths, dataset_paths, prediction_paths)]
    most = max((len(examples) for *_, examples in panels), default=1)
    # all examples in one row while they fit; else one class per column
    columns = most if most <= MAX_COLUMNS else min(-(-most // 2), MAX_COLUMNS)
    panel = (DOUBLE_COLUMN_IN - 1.5) / columns - 0.08  # the page less the row labels, colour bar and gaps
    drawn = [(survey, [(_caption(title, row, names, panel), *rest) for title, row, *rest in examples])
             for survey, _, names, examples in panels]
    pairs = [-(-len(examples) // columns) for _, examples in drawn]
    lines = max((caption.count("\n") + 1 for _, examples in drawn for caption, *_ in examples), default=1)
    figure, axes = plt.subplots(2 * sum(pairs), columns, squeeze=False, constrained_layout=True,
                                figsize=(DOUBLE_COLUMN_IN, sum(pairs) * (2 * panel + 0.1 * lines + 0.8) + 0.5))
    for p, (survey, examples) in enumerate(drawn):
        _draw_survey(figure, axes, 2 * sum(pairs[:p]), survey, examples)
    model_name = panels[0][1]["model_name"] if panels else "?"
    seed = panels[0][1]["seed"] if panels else "?"
    figure.suptitle(f"Occlusion saliency, {model_name} seed {seed}, test split: most confident correct and wrong "
                    "sources per class (contour: source outline)", fontsize=8)
    save_figure(figure, stem)
