"""Figure: the training augmentation (random rotation and flips) applied to one source."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from rgmorph.augment import random_rotate_flip
from rgmorph.dataset import load_dataset
from rgmorph.figures.preprocessing import most_extended_source
from rgmorph.figures.style import DOUBLE_COLUMN_IN, field_extent_arcmin, save_figure, show_image


def plot_augmentation_examples(dataset_path: str | Path, stem: str | Path, augment: dict, seed: int = 0,
                               examples: int = 7) -> None:
    dataset = load_dataset(dataset_path)
    index = int(np.flatnonzero(dataset["names"] == most_extended_source(dataset_path))[0])
    image = torch.from_numpy(dataset["images"][index])[None, None].repeat(examples, 1, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    augmented = random_rotate_flip(image, generator, **augment).numpy()[:, 0]
    figure, axes = plt.subplots(1, examples + 1, figsize=(DOUBLE_COLUMN_IN, DOUBLE_COLUMN_IN / (examples + 1) + 0.6),
                                constrained_layout=True)
    extent = field_extent_arcmin(dataset, index)
    titles = ["original", *[f"#{k}" for k in range(1, examples + 1)]]
    for axis, picture, title in zip(axes, [dataset["images"][index], *augmented], titles):
        show_image(axis, picture, extent=extent, ticks=False)
        axis.set_title(title, fontsize=8)
    axes[0].set_ylabel(f"{extent[1] * 2:.1f} arcmin")
    enabled = ", ".join(key for key, value in augment.items() if value) or "none"
    figure.suptitle(f"Training augmentation ({enabled}) of {dataset['names'][index]} ({dataset['survey']}), seed {seed}")
    save_figure(figure, stem)
