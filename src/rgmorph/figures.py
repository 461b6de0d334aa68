"""Stage 7: the paper's figures, one function per figure, each reading files a rule wrote.

Every figure is saved as PNG (300 dpi) and PDF with the same stem. Colours come from the
Okabe-Ito palette, which stays distinct for colour-blind readers and in greyscale print.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from rgmorph.augment import random_rotate_flip  # noqa: E402
from rgmorph.metrics import roc_curve  # noqa: E402
from rgmorph.preprocess import load_dataset, preprocessing_steps, read_fits_image  # noqa: E402

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.1
IMAGE_COLOURMAP = "inferno"
# A square-root stretch shows faint lobes beside bright cores; it is named on every image figure.
IMAGE_STRETCH = matplotlib.colors.PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)

plt.rcParams.update({
    "font.size": 9, "axes.labelsize": 9, "axes.titlesize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.dpi": 100, "savefig.dpi": 300,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO), "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType so journals accept the PDF
})


def save_figure(figure, stem: str | Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf (atomically) and close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix in (".png", ".pdf"):
        target = stem.with_suffix(suffix)
        temporary = target.with_name(f".{target.name}.part")
        figure.savefig(temporary, format=suffix[1:])
        temporary.replace(target)
        written.append(target)
    plt.close(figure)
    return written


def _field_extent_arcmin(dataset: dict, index: int) -> list[float]:
    half = dataset["images"].shape[-1] * dataset["pixel_scale_arcsec"][index] / 60.0 / 2.0
    return [-half, half, -half, half]


def plot_gallery(dataset_paths: list[str | Path], stem: str | Path, per_class: int = 3, seed: int = 0) -> None:
    """Preprocessed cutouts of the same sources in each survey (rows), grouped by class (columns)."""
    datasets = [load_dataset(path) for path in dataset_paths]
    common = set(datasets[0]["names"])
    for dataset in datasets[1:]:
        common &= set(dataset["names"])
    reference = datasets[0]
    rng = np.random.default_rng(seed)
    chosen = []
    for label, class_name in enumerate(reference["class_names"]):
        names = sorted(name for name, lab in zip(reference["names"], reference["labels"]) if lab == label and name in common)
        chosen += [(class_name, name) for name in rng.choice(names, size=min(per_class, len(names)), replace=False)]
    rows, columns = len(datasets), len(chosen)
    figure, axes = plt.subplots(rows, columns, figsize=(DOUBLE_COLUMN_IN, DOUBLE_COLUMN_IN / columns * rows * 1.15),
                                squeeze=False, constrained_layout=True)
    for row, dataset in enumerate(datasets):
        position = {name: index for index, name in enumerate(dataset["names"])}
        for column, (class_name, name) in enumerate(chosen):
            index = position[name]
            axis = axes[row, column]
            axis.imshow(dataset["images"][index], origin="lower", cmap=IMAGE_COLOURMAP, norm=IMAGE_STRETCH,
                        extent=_field_extent_arcmin(dataset, index))
            if row == 0:
                label = name.replace(" ", "\n", 1) if len(name) > 12 else name
                axis.set_title(f"{class_name}\n{label}", fontsize=6)
            if column == 0:
                axis.set_ylabel(f"{dataset['survey']}\nDec offset (arcmin)")
            else:
                axis.set_yticklabels([])
            if row == rows - 1:
                axis.set_xlabel("RA offset (arcmin)", fontsize=7)
            axis.tick_params(labelsize=6)
    figure.suptitle("Sample sources after preprocessing (same sources in each survey; square-root stretch)")
    save_figure(figure, stem)


def most_extended_source(dataset_path: str | Path) -> str:
    """The training source with the most emission left after clipping: the clearest example."""
    dataset = load_dataset(dataset_path)
    area = (dataset["images"] > 0).reshape(len(dataset["images"]), -1).sum(1) * (dataset["split"] == "train")
    return str(dataset["names"][int(np.argmax(area))])


def plot_preprocessing_steps(dataset_path: str | Path, manifest_path: str | Path, cutout_dir: str | Path,
                             stem: str | Path, sigma: float = 3.0) -> None:
    """Raw cutout -> NaN to 0 -> sigma clipped -> normalised, for the most extended training source."""
    source_name = most_extended_source(dataset_path)
    manifest = pd.read_csv(manifest_path).set_index("name")
    survey = manifest.loc[source_name, "survey"]
    image, header = read_fits_image(Path(cutout_dir) / manifest.loc[source_name, "file"], with_header=True)
    steps = preprocessing_steps(image, sigma)
    unit = str(header.get("BUNIT", "Jy/beam")).replace("JY/BEAM", "Jy/beam")
    titles = {"raw": f"raw ({unit})", "nan_to_zero": f"NaN -> 0 ({unit})",
              "sigma_clipped": f"{sigma:g}$\\sigma$ clipped ({unit})", "normalised": "normalised [0, 1] (sqrt)"}
    half = image.shape[0] * abs(float(header.get("CDELT2", 0.0))) * 60.0 / 2.0
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
        shown = axis.imshow(values, origin="lower", cmap=IMAGE_COLOURMAP, norm=norm, extent=[-half, half, -half, half])
        axis.set_title(titles[key], fontsize=7)
        axis.set_xlabel("RA offset (arcmin)")
        figure.colorbar(shown, ax=axis, shrink=0.8)
    axes[0].set_ylabel("Dec offset (arcmin)")
    figure.suptitle(f"Preprocessing of {source_name} ({survey})")
    save_figure(figure, stem)


def plot_augmentation_examples(dataset_path: str | Path, stem: str | Path, augment: dict, seed: int = 0,
                               examples: int = 7) -> None:
    dataset = load_dataset(dataset_path)
    index = int(np.flatnonzero(dataset["names"] == most_extended_source(dataset_path))[0])
    image = torch.from_numpy(dataset["images"][index])[None, None].repeat(examples, 1, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    augmented = random_rotate_flip(image, generator, **augment).numpy()[:, 0]
    figure, axes = plt.subplots(1, examples + 1, figsize=(DOUBLE_COLUMN_IN, DOUBLE_COLUMN_IN / (examples + 1) + 0.6),
                                constrained_layout=True)
    extent = _field_extent_arcmin(dataset, index)
    for axis, picture, title in zip(axes, [dataset["images"][index], *augmented], ["original", *[f"#{k}" for k in range(1, examples + 1)]]):
        axis.imshow(picture, origin="lower", cmap=IMAGE_COLOURMAP, norm=IMAGE_STRETCH, extent=extent)
        axis.set_title(title, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0].set_ylabel(f"{extent[1] * 2:.1f} arcmin")
    enabled = ", ".join(key for key, value in augment.items() if value) or "none"
    figure.suptitle(f"Training augmentation ({enabled}) of {dataset['names'][index]} ({dataset['survey']}), seed {seed}")
    save_figure(figure, stem)


def _run_key(path: Path) -> tuple[str, str, str]:
    """(survey, model, seed) from results/.../{survey}/{model}/seed{seed}/file."""
    return path.parts[-4], path.parts[-3], path.parts[-2].removeprefix("seed")


def _groups(paths: list[str | Path]) -> dict[tuple[str, str], list[Path]]:
    groups: dict[tuple[str, str], list[Path]] = {}
    for path in map(Path, paths):
        survey, model, _ = _run_key(path)
        groups.setdefault((model, survey), []).append(path)
    return dict(sorted(groups.items()))


def plot_learning_curves(history_paths: list[str | Path], stem: str | Path) -> None:
    """Loss and accuracy per epoch, mean over seeds with a +/- 1 std band, train vs validation."""
    groups = _groups(history_paths)
    figure, axes = plt.subplots(len(groups), 2, figsize=(DOUBLE_COLUMN_IN, 2.2 * len(groups)), squeeze=False,
                                constrained_layout=True)
    for row, ((model, survey), paths) in enumerate(groups.items()):
        histories = [pd.read_csv(path) for path in paths]
        epochs = min(len(history) for history in histories)
        x = np.arange(1, epochs + 1)
        for column, metric in enumerate(("loss", "accuracy")):
            axis = axes[row, column]
            for colour, part in zip(OKABE_ITO, ("train", "val")):
                values = np.stack([history[f"{part}_{metric}"].to_numpy()[:epochs] for history in histories])
                mean, std = values.mean(0), values.std(0)
                axis.plot(x, mean, color=colour, label={"train": "training", "val": "validation"}[part])
                axis.fill_between(x, mean - std, mean + std, color=colour, alpha=0.25, linewidth=0)
            axis.set_xlabel("epoch")
            axis.set_ylabel("cross-entropy loss" if metric == "loss" else "accuracy")
            axis.set_title(f"{model}, {survey} ({len(paths)} seeds)")
            axis.grid(alpha=0.3)
        axes[row, 0].legend(frameon=False)
    save_figure(figure, stem)


def plot_confusion_matrices(metrics_paths: list[str | Path], stem: str | Path) -> None:
    """Test-split confusion matrices summed over seeds, annotated with counts and row fractions."""
    groups = _groups(metrics_paths)
    figure, axes = plt.subplots(1, len(groups), figsize=(min(DOUBLE_COLUMN_IN, 2.6 * len(groups)), 2.6), squeeze=False,
                                constrained_layout=True)
    for axis, ((model, survey), paths) in zip(axes[0], groups.items()):
        reports = [json.loads(path.read_text()) for path in paths]
        matrix = np.sum([report["confusion_matrix"] for report in reports], axis=0)
        fractions = matrix / matrix.sum(1, keepdims=True)
        names = reports[0]["class_names"]
        axis.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(matrix):
            axis.text(j, i, f"{count}\n({fractions[i, j]:.2f})", ha="center", va="center",
                      color="white" if fractions[i, j] > 0.6 else "black", fontsize=8)
        axis.set_xticks(range(len(names)), names)
        axis.set_yticks(range(len(names)), names)
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        axis.set_title(f"{model}, {survey}\n(test split, {len(paths)} seeds)")
    save_figure(figure, stem)


def plot_roc_curves(prediction_paths: list[str | Path], stem: str | Path, positive_class: str = "FRII") -> None:
    """Test-split ROC curve of every seed, FRII as the positive class, with AUROC mean +/- std."""
    from rgmorph.metrics import auroc

    groups = _groups(prediction_paths)
    figure, axes = plt.subplots(1, len(groups), figsize=(min(DOUBLE_COLUMN_IN, 2.8 * len(groups)), 2.9), squeeze=False,
                                constrained_layout=True)
    for axis, ((model, survey), paths) in zip(axes[0], groups.items()):
        areas = []
        for k, path in enumerate(paths):
            predictions = pd.read_csv(path)
            true = (predictions["class_name"] == positive_class).to_numpy(int)
            scores = predictions[f"probability_{positive_class}"].to_numpy()
            fpr, tpr, _ = roc_curve(true, scores)
            areas.append(auroc(true, scores))
            axis.plot(fpr, tpr, color=OKABE_ITO[k % len(OKABE_ITO)], alpha=0.8, label=f"seed {_run_key(path)[2]}")
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="chance")
        axis.set_xlabel(f"false-positive rate (FRI called {positive_class})")
        axis.set_ylabel(f"true-positive rate ({positive_class})")
        axis.set_title(f"{model}, {survey}: AUROC {np.mean(areas):.3f} $\\pm$ {np.std(areas, ddof=1) if len(areas) > 1 else 0:.3f}")
        axis.set_aspect("equal")
        axis.legend(frameon=False, loc="lower right")
        axis.grid(alpha=0.3)
    save_figure(figure, stem)
