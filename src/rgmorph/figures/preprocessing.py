"""Figure: one raw cutout through each preprocessing step (NaN -> 0, sigma clip, normalise)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

from rgmorph.dataset import load_dataset
from rgmorph.fetch import read_manifest
from rgmorph.figures.style import DOUBLE_COLUMN_IN, IMAGE_COLOURMAP, IMAGE_STRETCH, save_figure, wrap_label
from rgmorph.preprocess import pixel_scale_arcsec, preprocessing_steps, read_fits_image


def most_extended_source(dataset_path: str | Path) -> str:
    """The training source with the most emission left after clipping: the clearest example."""
    dataset = load_dataset(dataset_path)
    area = (dataset["images"] > 0).reshape(len(dataset["images"]), -1).sum(1) * (dataset["split"] == "train")
    return str(dataset["names"][int(np.argmax(area))])


def plot_preprocessing_steps(dataset_path: str | Path, manifest_path: str | Path, cutout_dir: str | Path,
                             stem: str | Path, sigma: float = 3.0) -> None:
    """Raw cutout -> NaN to 0 -> sigma clipped -> normalised, for the most extended training source."""
    source_name = most_extended_source(dataset_path)
    manifest = read_manifest(manifest_path).set_index("name")
    survey = manifest.loc[source_name, "survey"]
    image, header = read_fits_image(Path(cutout_dir) / manifest.loc[source_name, "file"], with_header=True)
    steps = preprocessing_steps(image, sigma)
    unit = str(header.get("BUNIT", "Jy/beam")).replace("JY/BEAM", "Jy/beam")
    titles = {"raw": f"raw ({unit})", "nan_to_zero": f"NaN -> 0 ({unit})",
              "sigma_clipped": f"{sigma:g}$\\sigma$ clipped ({unit})", "normalised": "normalised [0, 1] (sqrt)"}
    half = image.shape[0] * pixel_scale_arcsec(header) / 60.0 / 2.0
    # a cutout converted from PNG/JPEG has no pixel scale in its header: its axes count pixels
    extent, offset = ([-half, half, -half, half], "offset (arcmin)") if np.isfinite(half) else (None, "(pixels)")
    figure, axes = plt.subplots(1, 4, figsize=(DOUBLE_COLUMN_IN, 2.3), constrained_layout=True)
    for axis, (key, values) in zip(axes, steps.items()):
        values = np.nan_to_num(values)
        if key == "normalised":
            norm = IMAGE_STRETCH
        elif key == "sigma_clipped":
            norm = matplotlib.colors.PowerNorm(gamma=0.5, vmin=0.0, vmax=float(values.max()) or 1.0)
        else:  # linear between percentiles, so the noise the clipping removes is visible
            low, high = np.percentile(values, [1, 99.5])
            norm = matplotlib.colors.Normalize(vmin=low, vmax=high)
        shown = axis.imshow(values, origin="lower", cmap=IMAGE_COLOURMAP, norm=norm, extent=extent)
        # wrapped and at 7 pt, title and x label stay within the image, clear of its colour bar
        axis.set_title(wrap_label(titles[key], 18), fontsize=7)
        axis.set_xlabel(f"RA {offset}", fontsize=7)
        figure.colorbar(shown, ax=axis, shrink=0.8)
    axes[0].set_ylabel(f"Dec {offset}", fontsize=7)
    figure.suptitle(f"Preprocessing of {source_name} ({survey})")
    save_figure(figure, stem)
