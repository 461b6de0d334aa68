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
    DIVERGING_COLOURMAP, DOUBLE_COLUMN_IN, empty_state, field_extent_arcmin, save_figure, short_name, show_image,
)


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


def plot_saliency(checkpoint_paths: list[str | Path], dataset_paths: list[str | Path],
                  prediction_paths: list[str | Path], stem: str | Path, patch: int | None = None) -> None:
    from rgmorph.train import load_checkpoint

    panels = []
    for checkpoint_path, dataset_path, prediction_path in zip(checkpoint_paths, dataset_paths, prediction_paths):
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
            target = int(row["predicted"])
            heat = occlusion_map(model, image, target, patch)
            predicted_name = dataset["class_names"][target]
            caption = (f"{title}\n{short_name(str(row['name']), 14)}\n"
                       f"P({predicted_name}) = {row['probability_' + predicted_name]:.2f}")
            examples.append((caption, image, heat, field_extent_arcmin(dataset, index), target))
        panels.append((dataset["survey"], checkpoint, examples))

    columns = max(len(examples) for _, _, examples in panels)
    figure, axes = plt.subplots(2 * len(panels), columns, figsize=(DOUBLE_COLUMN_IN, 1.95 * 2 * len(panels) + 0.5),
                                squeeze=False, constrained_layout=True)
    for p, (survey, checkpoint, examples) in enumerate(panels):
        # one symmetric scale per survey: the models' sensitivity differs a lot between surveys
        limit = max([np.abs(e[2]).max() for e in examples if e[2] is not None] + [1e-6])
        norm = matplotlib.colors.TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)
        mappable = None
        for column, (caption, image, heat, extent, _) in enumerate(examples):
            top, bottom = axes[2 * p, column], axes[2 * p + 1, column]
            if image is None:
                empty_state(top, f"{caption}\n\nnone in the test split")
                empty_state(bottom, "")
                continue
            show_image(top, image, extent=extent, ticks=False)
            top.set_title(caption, fontsize=6)
            mappable = bottom.imshow(heat, origin="lower", cmap=DIVERGING_COLOURMAP, norm=norm, extent=extent)
            bottom.contour(image, levels=[0.05], colors="black", linewidths=0.4, origin="lower", extent=extent)
            bottom.set_xticks([])
            bottom.set_yticks([])
        field = next((f"\n{e[3][1] * 2:.1f} arcmin" for e in examples if e[3] is not None), "")
        axes[2 * p, 0].set_ylabel(f"{survey}\nimage (sqrt){field}", fontsize=7)
        axes[2 * p + 1, 0].set_ylabel(f"{survey}\nocclusion map", fontsize=7)
        if mappable is not None:
            bar = figure.colorbar(mappable, ax=axes[2 * p + 1, :], shrink=0.9, aspect=12)
            bar.set_label("drop in log-odds of the\npredicted class if occluded", fontsize=7)
            bar.ax.tick_params(labelsize=6)
    model_name = panels[0][1]["model_name"] if panels else "?"
    seed = panels[0][1]["seed"] if panels else "?"
    figure.suptitle(f"Occlusion saliency, {model_name} seed {seed}, test split: most confident correct and wrong "
                    "sources per class (contour: source outline)", fontsize=8)
    save_figure(figure, stem)
