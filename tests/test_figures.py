"""Every figure is written as a non-trivial PNG and PDF (its provenance is in sidecars: test_provenance.py)."""

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import tiny_results
from conftest import QUICKSTART_MIRROR
from rgmorph import figures
from rgmorph.figures.confident_errors import confident_errors
from rgmorph.figures.runs import Variant, variant_from_path
from rgmorph.figures.saliency import choose_examples, occlusion_map

# 100 dpi keeps these tests fast; the workflow writes 300 dpi
matplotlib.rcParams["savefig.dpi"] = 100


def assert_nontrivial(stem, min_png_bytes=5_000):
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > min_png_bytes, png
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5_000, pdf
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 300  # a journal column or wider at 100 dpi
    assert pixels.std() > 10, f"{png} is (nearly) blank"


@pytest.fixture(scope="module")
def tree():
    return tiny_results.shared()


def test_gallery(tree, tmp_path):
    figures.plot_gallery(tree["datasets"], tmp_path / "gallery", per_class=2)
    assert_nontrivial(tmp_path / "gallery")


def test_augmentation(tree, tmp_path):
    figures.plot_augmentation_examples(tree["datasets"][0], tmp_path / "augmentation",
                                       {"rotate": True, "hflip": True, "vflip": True})
    assert_nontrivial(tmp_path / "augmentation", min_png_bytes=3_000)


def test_preprocessing_on_a_real_first_cutout(tmp_path):
    index = pd.read_csv(QUICKSTART_MIRROR / "index.csv")
    file = index.loc[index["file"].str.startswith("FIRST/"), "file"].iloc[0]
    dataset = tmp_path / "FIRST.npz"
    np.savez_compressed(dataset, images=np.random.default_rng(0).random((1, 150, 150), dtype=np.float32),
                        labels=np.array([1]), names=np.array(["REAL 1"]), split=np.array(["train"]),
                        sha256=np.array(["0" * 64]), class_names=np.array(["FRI", "FRII"]),
                        pixel_scale_arcsec=np.array([1.8]), survey=np.array("FIRST"))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"name": ["REAL 1"], "survey": ["FIRST"], "file": [file.removeprefix("FIRST/")], "sha256": ["0" * 64],
                  "status": ["ok"], "detail": [""]}).to_csv(manifest, index=False)  # the columns fetch writes
    figures.plot_preprocessing_steps(dataset, manifest, QUICKSTART_MIRROR / "FIRST", tmp_path / "preprocessing")
    assert_nontrivial(tmp_path / "preprocessing")


def test_learning_curves(tree, tmp_path):
    figures.plot_learning_curves(tree["histories"], tmp_path / "learning_curves")
    assert_nontrivial(tmp_path / "learning_curves")


def test_confusion_matrices(tree, tmp_path):
    figures.plot_confusion_matrices(tree["metrics"], tmp_path / "confusion_matrices")
    assert_nontrivial(tmp_path / "confusion_matrices")


def test_roc_curves(tree, tmp_path):
    figures.plot_roc_curves(tree["metrics"], tmp_path / "roc_curves")
    assert_nontrivial(tmp_path / "roc_curves")


def test_variant_comparison(tree, tmp_path):
    figures.plot_variant_comparison(tree["runs"], tmp_path / "variant_comparison")
    assert_nontrivial(tmp_path / "variant_comparison")


def test_transfer_comparison_empty_state_and_with_transfer_runs(tree, tmp_path):
    figures.plot_transfer_comparison(tree["runs"], tmp_path / "transfer_empty")
    assert_nontrivial(tmp_path / "transfer_empty")
    runs = pd.read_csv(tree["runs"], keep_default_na=False)
    transfer = runs[runs["survey"] == "FIRST"].assign(kind="transfer", pretrained_on="NVSS")
    pd.concat([runs, transfer]).to_csv(tmp_path / "runs.csv", index=False)
    figures.plot_transfer_comparison(tmp_path / "runs.csv", tmp_path / "transfer")
    assert_nontrivial(tmp_path / "transfer")


def test_saliency(tree, tmp_path):
    checkpoints = [tree["checkpoints"][0], tree["checkpoints"][2]]  # seed 0 of each survey
    predictions = [tree["predictions"][0], tree["predictions"][2]]
    figures.plot_saliency(checkpoints, tree["datasets"], predictions, tmp_path / "saliency")
    assert_nontrivial(tmp_path / "saliency")


def test_confident_errors(tree, tmp_path):
    figures.plot_confident_errors(tree["predictions"], tree["datasets"], tmp_path / "confident_errors", per_survey=3)
    assert_nontrivial(tmp_path / "confident_errors")


def test_confident_errors_ranks_by_mean_probability_of_the_true_class(tmp_path):
    for seed, p_frii in enumerate(([0.9, 0.2, 0.6], [0.7, 0.4, 0.9])):
        pd.DataFrame({"name": ["A", "B", "C"], "label": [0, 1, 0], "class_name": ["FRI", "FRII", "FRI"],
                      "probability_FRI": 1 - np.array(p_frii), "probability_FRII": p_frii,
                      "predicted": (np.array(p_frii) >= 0.5).astype(int)}).to_csv(tmp_path / f"{seed}.csv")
    errors = confident_errors([tmp_path / "0.csv", tmp_path / "1.csv"], ["FRI", "FRII"])
    # mean P(true class): A (FRI, P(FRII) 0.9/0.7) 0.2; C (FRI, 0.6/0.9) 0.25; B (FRII, 0.2/0.4) 0.3
    assert list(errors["name"]) == ["A", "C", "B"]
    assert list(errors["wrong"]) == [2, 2, 2] and errors["p_true"].iloc[0] == pytest.approx(0.2)


def test_occlusion_map_finds_the_pixels_a_model_uses():
    class CentreDetector(torch.nn.Module):  # P(class 1) rises with the brightness of the central 8x8 pixels
        def forward(self, images):
            signal = images[:, 0, 28:36, 28:36].mean(dim=(1, 2)) * 10
            return torch.stack([torch.zeros_like(signal), signal], dim=1)

    image = np.ones((64, 64), dtype=np.float32)
    heat = occlusion_map(CentreDetector(), image, target=1, patch=8, stride=4)
    assert heat.shape == (64, 64)
    assert heat[32, 32] > 0.1 and abs(heat[2, 2]) < 1e-6 and abs(heat[60, 5]) < 1e-6


def test_saliency_examples_cover_correct_and_wrong_per_class():
    predictions = pd.DataFrame({"name": list("abcd"), "label": [0, 0, 1, 1], "predicted": [0, 1, 1, 1],
                                "probability_FRI": [0.9, 0.3, 0.2, 0.4], "probability_FRII": [0.1, 0.7, 0.8, 0.6]})
    chosen = dict(choose_examples(predictions, ["FRI", "FRII"]))
    assert chosen["correct: true FRI"]["name"] == "a" and chosen["correct: true FRII"]["name"] == "c"
    assert chosen["wrong: true FRI"]["name"] == "b" and chosen["wrong: true FRII"] is None


def test_variant_from_path_reads_both_layouts():
    assert variant_from_path("r/models/FIRST/tang2019/seed2/history.csv") == (Variant("tang2019", "FIRST"), 2)
    assert variant_from_path("r/evaluation/FIRST/tang2019/transfer-from-NVSS/seed0/metrics.json") == (
        Variant("tang2019", "FIRST", "NVSS"), 0)


def _figure_text(figure, title: str) -> str:
    texts = [title, figure._suptitle.get_text() if figure._suptitle else ""]
    for axis in figure.axes:
        texts += [axis.get_title(), axis.get_xlabel(), axis.get_ylabel()]
        legend = axis.get_legend()
        texts += [text.get_text() for text in legend.get_texts()] if legend else []
    return "\n".join(texts)


@pytest.fixture
def three_class_runs(tmp_path, monkeypatch):
    from test_evaluate import make_three_class_runs

    metrics_paths, predictions_paths, dataset = make_three_class_runs(tmp_path / "results", monkeypatch)
    monkeypatch.undo()
    return metrics_paths, predictions_paths, dataset


def _capture(monkeypatch, module):
    """Keep the figure and title each plot hands to save_figure (which still writes the files)."""
    seen = []

    def keep(figure, stem, title=None, **options):
        seen.append(_figure_text(figure, title or ""))
        return original(figure, stem, **({"title": title} if title else {}), **options)

    original = module.save_figure
    monkeypatch.setattr(module, "save_figure", keep)
    return seen


def test_roc_and_confusion_figures_for_three_classes(three_class_runs, tmp_path, monkeypatch):
    from rgmorph.figures import roc_curves

    metrics_paths, _, _ = three_class_runs
    seen = _capture(monkeypatch, roc_curves)
    figures.plot_roc_curves(metrics_paths, tmp_path / "roc3")
    assert_nontrivial(tmp_path / "roc3")
    assert "FRII positive" not in seen[0] and "one-vs-rest" in seen[0]
    assert all(f"{name} vs rest" in seen[0] for name in ("FRI", "FRII", "Bent"))
    figures.plot_confusion_matrices(metrics_paths, tmp_path / "confusion3")
    assert_nontrivial(tmp_path / "confusion3")


def test_comparison_figures_for_three_classes(three_class_runs, tmp_path, monkeypatch):
    from rgmorph.evaluate import summarise_runs
    from rgmorph.figures import transfer_comparison, variant_comparison

    metrics_paths, _, _ = three_class_runs
    summarise_runs(metrics_paths, tmp_path / "runs.csv", tmp_path / "summary.csv", n_resamples=10)
    seen = _capture(monkeypatch, variant_comparison)
    figures.plot_variant_comparison(tmp_path / "runs.csv", tmp_path / "variants3")
    assert_nontrivial(tmp_path / "variants3")
    assert variant_comparison.default_panels(pd.read_csv(tmp_path / "runs.csv").columns) == \
        variant_comparison.MULTICLASS_PANELS
    figures.plot_transfer_comparison(tmp_path / "runs.csv", tmp_path / "transfer3")
    assert_nontrivial(tmp_path / "transfer3")
    assert transfer_comparison.default_panels(pd.read_csv(tmp_path / "runs.csv").columns) == \
        transfer_comparison.MULTICLASS_PANELS
    assert seen and "FRII positive" not in seen[0] and "macro-F1" in seen[0]


def test_binary_figures_keep_their_panels_and_labels(tree):
    from rgmorph.figures import transfer_comparison, variant_comparison

    columns = pd.read_csv(tree["runs"]).columns
    assert variant_comparison.default_panels(columns) == variant_comparison.PANELS
    assert transfer_comparison.default_panels(columns) == transfer_comparison.PANELS


@pytest.mark.parametrize("class_names", [["FRI", "FRII", "Compact", "Bent"],
                                         ["FRI", "FRII", "Compact source", "Bent-tailed", "Hybrid", "X-shaped"]])
def test_confusion_matrix_labels_and_titles_stay_apart_and_inside_with_many_long_classes(
        three_class_runs, tmp_path, monkeypatch, class_names):
    import json
    from pathlib import Path

    from rgmorph.figures import confusion_matrices

    metrics_paths, _, _ = three_class_runs
    generator = np.random.default_rng(0)
    for path in metrics_paths:
        report = json.loads(Path(path).read_text())
        report["class_names"] = class_names
        report["confusion_matrix"] = generator.integers(0, 9, (len(class_names),) * 2).tolist()
        Path(path).write_text(json.dumps(report))
    drawn = []
    monkeypatch.setattr(confusion_matrices, "save_figure", lambda figure, stem, **_: drawn.append(figure))
    figures.plot_confusion_matrices(metrics_paths, tmp_path / "confusion")
    figure = drawn[0]
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    page = figure.bbox
    for axis in (axis for axis in figure.axes if axis.get_visible() and axis.get_xticklabels()):
        boxes = [label.get_window_extent(renderer) for label in axis.get_xticklabels()]
        assert [label.get_text() for label in axis.get_xticklabels()] == class_names
        assert not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])), "x tick labels run together"
        for text in [axis.title, *axis.get_xticklabels(), *axis.get_yticklabels()]:
            box = text.get_window_extent(renderer)
            assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1, f"{text.get_text()!r} is cut off"


# Long class and source names (an image-folder study's file names) must not make a figure unreadable
LONG_CLASSES = ["FRI", "FRII", "Compact source", "Bent-tailed radio galaxy", "Hybrid double-double",
                "Unknown morphology"]


def _long_name_dataset(path, class_names, survey="FIRST", per_class=4, size=32):
    """Blob images with file-name-like source names, half of each class in the test split."""
    generator = np.random.default_rng(len(class_names))
    labels = np.repeat(np.arange(len(class_names)), per_class)
    names = [f"{100 + k * 7.31:.5f}_{k - 20:+.5f}_{class_names[label]}_survey-{'test' if k % 2 else 'train'}"
             for k, label in enumerate(labels)]
    yy, xx = np.mgrid[:size, :size]
    images = np.stack([np.exp(-((xx - generator.uniform(8, 24)) ** 2 + (yy - size / 2) ** 2) / 12)
                       for _ in labels]).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    split = np.array(["train", "test"] * (len(names) // 2))
    np.savez(path, images=images, labels=labels, names=np.array(names), split=split,
             sha256=np.array(["0" * 64] * len(names)), class_names=np.array(class_names),
             pixel_scale_arcsec=np.full(len(labels), 1.8), survey=np.array(survey))
    return path, names, labels


def _long_name_predictions(path, names, labels, class_names, seed=0):
    """Test-split predictions, the first test source of each class wrong (but none of the last class)."""
    generator = np.random.default_rng(seed)
    rows = []
    for k, (name, label) in enumerate(zip(names, labels)):
        if k % 2 == 0:
            continue
        wrong = k % 4 == 1 and label != len(class_names) - 1
        predicted = (label + 1) % len(class_names) if wrong else label
        probability = generator.dirichlet(np.ones(len(class_names))) * 0.3
        probability[predicted] += 0.7
        rows.append({"name": name, "label": label, "class_name": class_names[label], "predicted": predicted,
                     **{f"probability_{c}": p for c, p in zip(class_names, probability)}})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _drawn(monkeypatch, module, plot, *args, **options):
    """The figure ``plot`` hands to save_figure, drawn, and its renderer."""
    drawn = []
    monkeypatch.setattr(module, "save_figure", lambda figure, stem, **_: drawn.append(figure))
    plot(*args, **options)
    figure = drawn[0]
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    return figure, renderer


def _assert_texts_apart_and_inside(figure, renderer):
    """Titles, axis labels and panel texts: no two overlap, none runs into a panel, all stay on the page."""
    import itertools

    axes = [axis for axis in figure.axes if axis.get_visible()]
    texts = [figure._suptitle] if figure._suptitle else []
    for axis in axes:
        texts += [axis.title, axis.xaxis.label, axis.yaxis.label, *axis.texts]
    boxes = [(text, text.get_window_extent(renderer)) for text in texts if text.get_visible() and text.get_text()]
    assert any(text is axis.title for text, _ in boxes for axis in axes), "no panel titles"
    for (text_a, a), (text_b, b) in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), f"{text_a.get_text()!r} and {text_b.get_text()!r} overlap"
    for text, box in boxes:
        page = figure.bbox
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, \
            f"{text.get_text()!r} is cut off"
        for axis in axes:
            if text not in axis.texts:
                assert not box.overlaps(axis.bbox), f"{text.get_text()!r} runs into a panel"


@pytest.mark.parametrize("n_classes", [2, 4, 6])
def test_gallery_titles_stay_apart_and_inside_with_many_long_classes(tmp_path, monkeypatch, n_classes):
    from rgmorph.figures import gallery

    class_names = LONG_CLASSES[:n_classes]
    paths = [_long_name_dataset(tmp_path / f"{survey}.npz", class_names, survey)[0] for survey in ("FIRST", "NVSS")]
    figure, renderer = _drawn(monkeypatch, gallery, figures.plot_gallery, paths, tmp_path / "gallery", per_class=3)
    titles = [axis.get_title() for axis in figure.axes if axis.get_visible() and axis.get_title()]
    assert len(titles) == 3 * n_classes and all(max(map(len, title.split("\n"))) <= 20 for title in titles)
    assert len({round(axis.get_position().x0, 3) for axis in figure.axes}) <= gallery.MAX_COLUMNS  # wrapped rows
    _assert_texts_apart_and_inside(figure, renderer)


@pytest.mark.parametrize("n_classes", [2, 4, 6])
def test_saliency_titles_stay_apart_and_inside_with_many_long_classes(tmp_path, monkeypatch, n_classes):
    import rgmorph.train
    from rgmorph.figures import saliency

    class_names = LONG_CLASSES[:n_classes]
    dataset, names, labels = _long_name_dataset(tmp_path / "FIRST.npz", class_names)
    predictions = _long_name_predictions(tmp_path / "predictions.csv", names, labels, class_names)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, n_classes))
    checkpoint = {"model_name": "tang2019", "seed": 0}
    monkeypatch.setattr(rgmorph.train, "load_checkpoint", lambda path, *_: (model, checkpoint))
    figure, renderer = _drawn(monkeypatch, saliency, figures.plot_saliency, ["checkpoint.pt"], [dataset], [predictions],
                              tmp_path / "saliency")
    titles = [axis.get_title() for axis in figure.axes if axis.get_visible() and axis.get_title()]
    assert len(titles) == 2 * n_classes and sum("none in the" in text.get_text() for axis in figure.axes
                                                for text in axis.texts) == 1
    _assert_texts_apart_and_inside(figure, renderer)


@pytest.mark.parametrize("n_classes", [2, 6])
def test_confident_error_titles_stay_apart_and_inside_with_many_long_classes(tmp_path, monkeypatch, n_classes):
    from rgmorph.figures import confident_errors as module

    class_names = LONG_CLASSES[:n_classes]
    dataset, names, labels = _long_name_dataset(tmp_path / "datasets" / "FIRST.npz", class_names, per_class=8)
    predictions = [_long_name_predictions(tmp_path / "evaluation" / "FIRST" / "tang2019" / f"seed{seed}" /
                                          "predictions.csv", names, labels, class_names, seed) for seed in (0, 1)]
    figure, renderer = _drawn(monkeypatch, module, figures.plot_confident_errors, predictions, [dataset],
                              tmp_path / "confident_errors")
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles and all("\ntrue " in title and max(map(len, title.split("\n"))) <= 24 for title in titles)
    _assert_texts_apart_and_inside(figure, renderer)


@pytest.mark.parametrize("n_classes", [4, 6])
def test_roc_legend_leaves_the_curves_free_with_many_long_classes(three_class_runs, tmp_path, monkeypatch, n_classes):
    import json
    from pathlib import Path

    from rgmorph.figures import roc_curves

    metrics_paths, _, _ = three_class_runs
    class_names = LONG_CLASSES[:n_classes]
    generator = np.random.default_rng(0)
    paths = []
    for path in metrics_paths:
        report = json.loads(Path(path).read_text())
        report["class_names"] = class_names
        curves = {name: np.sort(generator.uniform(0, 1, (2, 12)), axis=1) for name in class_names}
        report["roc_curves"] = {name: {"fpr": [0, *fpr, 1], "tpr": [0, *tpr, 1]} for name, (fpr, tpr) in curves.items()}
        report.update({f"auroc_{name}": float(generator.uniform(0.5, 1)) for name in class_names})
        for survey in ("FIRST", "NVSS"):  # two panels side by side
            report["run"]["survey"] = survey
            target = tmp_path / survey / Path(path).parent.name / "metrics.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(report))
            paths.append(target)
    figure, renderer = _drawn(monkeypatch, roc_curves, figures.plot_roc_curves, paths, tmp_path / "roc")
    axes = [axis for axis in figure.axes if axis.get_visible()]
    assert len(axes) == 2
    _assert_texts_apart_and_inside(figure, renderer)
    for axis in axes:
        legend = axis.get_legend()
        entries = [text.get_text().replace("\n", " ") for text in legend.get_texts()]
        assert all(entry.startswith(f"{name} vs rest (") for entry, name in zip(entries, class_names))
        box = legend.get_window_extent(renderer)
        page = figure.bbox
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0, "the legend is cut off"
        for other in axes:
            assert not box.overlaps(other.bbox), "the legend covers curves"
            assert not box.overlaps(other.xaxis.label.get_window_extent(renderer)), "the legend covers an x label"


def test_preprocessing_of_a_cutout_without_a_pixel_scale_counts_pixels(tmp_path, monkeypatch):
    from astropy.io import fits

    from rgmorph.figures import preprocessing

    image = np.zeros((40, 40), np.float32)
    image[18:22, 15:25] = 1.0
    fits.PrimaryHDU(image).writeto(tmp_path / "cutout.fits")  # as converted from a PNG: no CDELT2
    np.savez(tmp_path / "FIRST.npz", images=image[None], labels=np.array([0]), names=np.array(["A"]),
             split=np.array(["train"]), sha256=np.array(["0" * 64]), class_names=np.array(["FRI", "FRII"]),
             pixel_scale_arcsec=np.array([np.nan]), survey=np.array("FIRST"))
    pd.DataFrame({"name": ["A"], "survey": ["FIRST"], "file": ["cutout.fits"], "sha256": ["0" * 64], "status": ["ok"],
                  "detail": [""]}).to_csv(tmp_path / "manifest.csv", index=False)
    figure, renderer = _drawn(monkeypatch, preprocessing, figures.plot_preprocessing_steps, tmp_path / "FIRST.npz",
                              tmp_path / "manifest.csv", tmp_path, tmp_path / "preprocessing")
    shown = [axis for axis in figure.axes if axis.images and axis.get_xlabel()]
    assert len(shown) == 4 and all(axis.get_xlabel() == "RA (pixels)" for axis in shown)
    assert shown[0].get_xlim() == pytest.approx((-0.5, 39.5))
    _assert_texts_apart_and_inside(figure, renderer)


def test_wrap_label_keeps_short_names_and_wraps_file_names():
    from rgmorph.figures.style import wrap_label

    assert wrap_label("3C 305") == "3C 305" and wrap_label("SDSS J124622.48+075327.9") == "SDSS\nJ124622.48+075327.9"
    assert wrap_label("Bent-tailed radio galaxy", 16) == "Bent-tailed\nradio galaxy"
    wrapped = wrap_label("119.94692_+37.64728_Unknown morphology_survey-test", 20, 2).split("\n")
    assert wrapped == ["119.94692_+37.64728_", "Unknown morphology_\u2026"]
    assert wrap_label("J" * 45, 20) == "\n".join(["J" * 20, "J" * 20, "J" * 5])
