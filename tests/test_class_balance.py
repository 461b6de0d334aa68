"""Unequal classes and K >= 3 classes in training: class-weighted loss, balanced sampling, and the
Gabor SVM on three classes; an extra evaluation split (MiraBest's uncertain sources) scored apart."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from rgmorph.batched import RunStreams, SeedBatch, SeedRun
from rgmorph.evaluate import evaluate_checkpoint
from rgmorph.train import TrainSettings, train_seeds
from conftest import write_synthetic_dataset

THREE_CLASSES = ["FRI", "FRII", "Bent"]


def _imbalanced_data(majority=6, minority=2, size=32):
    images = torch.rand(majority + minority + 4, 1, size, size, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0] * majority + [1] * minority + [0, 1, 0, 1])
    fit = majority + minority
    return images[:fit], labels[:fit], images[fit:], labels[fit:]


def test_class_weighted_loss_weights_each_class_by_n_over_k_n_class():
    batch = SeedBatch("lenet", [SeedRun(0)], [_imbalanced_data()], TrainSettings(class_balance="loss"), "cpu")
    torch.testing.assert_close(batch.loss_weights, torch.tensor([[8 / (2 * 6), 8 / (2 * 2)]]))
    assert batch.sampling_weights is None
    plain = SeedBatch("lenet", [SeedRun(0)], [_imbalanced_data()], TrainSettings(), "cpu")
    assert plain.loss_weights is None and plain.sampling_weights is None


def test_balanced_sampling_draws_each_class_equally_often_and_reproducibly():
    batch = SeedBatch("lenet", [SeedRun(3)], [_imbalanced_data()], TrainSettings(class_balance="sampling"), "cpu")
    labels = batch.pool_labels
    weights = batch.sampling_weights[0]
    draws = [RunStreams(3).epoch(4000, {}, weights)[0] for _ in range(2)]
    assert torch.equal(draws[0], draws[1])  # the seed alone fixes the draws
    assert abs(float((labels[draws[0]] == 1).double().mean()) - 0.5) < 0.03  # 2 of 8 fit images, drawn half the time
    permutation = RunStreams(3).epoch(8, {})[0]
    assert sorted(permutation.tolist()) == list(range(8))  # 'none': every fit image once per epoch, as before


def test_a_class_without_fit_images_is_refused_by_name():
    images, labels, v_images, v_labels = _imbalanced_data()
    with pytest.raises(ValueError, match="class_balance='loss'.*no fit image"):
        SeedBatch("lenet", [SeedRun(0)], [(images, torch.zeros_like(labels), v_images, v_labels)],
                  TrainSettings(class_balance="loss"), "cpu", num_classes=2)


@pytest.fixture(scope="module")
def three_class_dataset(tmp_path_factory):
    """The synthetic FRI/FRII contrast plus a third class: a compact core with a tail bent to one side."""
    folder = tmp_path_factory.mktemp("three")
    two = dict(np.load(write_synthetic_dataset(folder / "two.npz", per_class=16, size=48)))
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:48, :48] - 23.5
    bent = []
    for _ in range(12):  # fewer Bent sources than FRI or FRII, as in the real task
        angle = rng.uniform(0, 2 * np.pi)
        u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
        image = np.exp(-(u**2 + v**2) / 8) + 0.6 * np.exp(-((u - 8) ** 2 + (v - 0.08 * u**2) ** 2) / 10)
        bent.append(np.clip(image / image.max() + rng.normal(0, 0.02, image.shape), 0, 1).astype(np.float32))
    two["split"] = two["split"].astype("U9")  # room for "uncertain"
    two["split"][[4, 20]] = "uncertain"  # one FRI and one FRII beside one Bent in the extra split
    dataset = folder / "three.npz"
    np.savez_compressed(
        dataset, images=np.concatenate([two["images"], np.stack(bent)]),
        labels=np.concatenate([two["labels"], np.full(12, 2)]),
        names=np.concatenate([two["names"], [f"BENT {k}" for k in range(12)]]),
        split=np.concatenate([two["split"], ["test", "test"] + ["train"] * 9 + ["uncertain"]]),
        sha256=np.concatenate([two["sha256"], ["0" * 64] * 12]), class_names=np.array(THREE_CLASSES),
        pixel_scale_arcsec=np.full(44, 1.8), survey=np.array("SYNTH"))
    return dataset


@pytest.mark.parametrize("model, class_balance", [("gabor_svm", "loss"), ("lenet", "sampling")])
def test_three_classes_train_with_class_balance_and_evaluate_on_test_and_an_extra_split(
        three_class_dataset, tmp_path, model, class_balance):
    settings = TrainSettings(epochs=1, batch_size=8, threads=1, class_balance=class_balance,
                             model_options={"C_grid": [1.0], "gamma_grid": [1.0]} if model == "gabor_svm" else {})
    checkpoint = train_seeds(three_class_dataset, model, [0], settings, [tmp_path / "c.pt"], [tmp_path / "h.csv"])[0]
    assert checkpoint["settings"]["class_balance"] == class_balance
    test = evaluate_checkpoint(tmp_path / "c.pt", three_class_dataset, tmp_path / "m.json", tmp_path / "p.csv",
                               n_resamples=20)
    extra = evaluate_checkpoint(tmp_path / "c.pt", three_class_dataset, tmp_path / "m_u.json", tmp_path / "p_u.csv",
                                n_resamples=20, split="uncertain")
    assert test["class_names"] == THREE_CLASSES and np.array(test["confusion_matrix"]).shape == (3, 3)
    assert test["n_samples"] == 10 and extra["n_samples"] == 3 and np.array(extra["confusion_matrix"]).sum() == 3 and extra["split"] == "uncertain"
    assert json.loads((tmp_path / "m_u.json").read_text())["bootstrap"]["method"].endswith("uncertain sources")
    validation = evaluate_checkpoint(tmp_path / "c.pt", three_class_dataset, tmp_path / "m_v.json",
                                     tmp_path / "p_v.csv", n_resamples=20, split="validation")
    assert sorted(pd.read_csv(tmp_path / "p_v.csv")["name"]) == sorted(checkpoint["validation_names"])
    assert validation["n_samples"] == len(checkpoint["validation_names"])
    if model == "gabor_svm":
        assert test["accuracy"] >= 0.8  # three easy synthetic shapes
    with pytest.raises(ValueError, match="no source in split 'hybrid'"):
        evaluate_checkpoint(tmp_path / "c.pt", three_class_dataset, tmp_path / "x.json", tmp_path / "x.csv",
                            split="hybrid")
    assert not (tmp_path / "x.json").exists()
