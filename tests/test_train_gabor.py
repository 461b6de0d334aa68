"""The Gabor-feature SVM trains through the same stage as the networks: C and gamma chosen on the
validation hold-out, a checkpoint that evaluation loads like a network's, a one-row history."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from rgmorph.evaluate import evaluate_checkpoint
from rgmorph.dataset import load_dataset
from rgmorph.models.gabor_svm import GaborSVMModule, select_svm
from rgmorph.train import TrainSettings, load_checkpoint, predict_logits, train_seeds
from conftest import write_synthetic_dataset

GRID = {"C_grid": [1.0, 10.0], "gamma_grid": [0.3, 1.0]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gabor")
    dataset = write_synthetic_dataset(folder / "synthetic.npz", per_class=24, size=48)
    settings = TrainSettings(model_options=GRID)
    checkpoints = train_seeds(dataset, "gabor_svm", [0, 1], settings, [folder / f"seed{s}.pt" for s in (0, 1)],
                              [folder / f"seed{s}.csv" for s in (0, 1)])
    return folder, dataset, checkpoints


def test_hyperparameters_come_from_the_grid_and_the_history_has_one_row(trained):
    folder, _, checkpoints = trained
    for seed, checkpoint in enumerate(checkpoints):
        assert checkpoint["chosen"]["C"] in GRID["C_grid"] and checkpoint["chosen"]["gamma"] in GRID["gamma_grid"]
        assert checkpoint["parameters"] > 0 and checkpoint["kind"] == "scratch"
        history = pd.read_csv(folder / f"seed{seed}.csv")
        assert len(history) == 1 and history["best"].all()
        assert history["val_accuracy"].iloc[0] == checkpoint["best_val_accuracy"]


def test_the_checkpoint_loads_as_a_module_that_reproduces_the_validation_score(trained):
    folder, dataset_path, checkpoints = trained
    model, checkpoint = load_checkpoint(folder / "seed0.pt")
    assert isinstance(model, GaborSVMModule)
    dataset = load_dataset(dataset_path)
    index = np.flatnonzero(np.isin(dataset["names"], checkpoint["validation_names"]))
    logits = predict_logits(model, torch.from_numpy(dataset["images"][index]).unsqueeze(1))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(dataset["labels"][index])).item()
    assert loss == pytest.approx(checkpoint["best_val_loss"], rel=1e-4)


def test_evaluation_treats_it_like_a_network(trained, tmp_path):
    folder, dataset_path, _ = trained
    report = evaluate_checkpoint(folder / "seed1.pt", dataset_path, tmp_path / "metrics.json",
                                 tmp_path / "predictions.csv", n_resamples=20)
    run = json.loads((tmp_path / "metrics.json").read_text())["run"]
    assert run["model"] == "gabor_svm" and run["kind"] == "scratch" and run["trained_on"] == "SYNTH"
    assert report["accuracy"] >= 0.8  # an easy synthetic contrast


def test_selection_prefers_the_lower_validation_loss():
    rng = np.random.default_rng(0)
    fit = rng.normal(size=(60, 4)) + np.repeat([[0], [2]], 30, axis=0)
    labels = np.repeat([0, 1], 30)
    validation = rng.normal(size=(20, 4)) + np.repeat([[0], [2]], 10, axis=0)
    chosen = select_svm(fit, labels, validation, np.repeat([0, 1], 10), C=[0.1, 1.0], gamma=[1.0])
    assert chosen["C"] in (0.1, 1.0) and chosen["val_accuracy"] >= 0.8
