import numpy as np
import pandas as pd
import pytest
import torch

from rgmorph.dataset import load_dataset
from rgmorph.checkpoint import run_info_path
from rgmorph.train import TrainSettings, load_checkpoint, predict_logits, train_seeds, validation_split
from conftest import write_synthetic_dataset


def test_validation_split_is_stratified_disjoint_and_fixed():
    labels = np.array([0] * 40 + [1] * 60 + [0] * 10)
    train = np.arange(100)  # the last 10 are the test split
    fit, validation = validation_split(labels, train, 0.2, seed=2019)
    assert len(np.intersect1d(fit, validation)) == 0
    assert sorted(np.concatenate([fit, validation]).tolist()) == train.tolist()
    assert (labels[validation] == 0).sum() == 8 and (labels[validation] == 1).sum() == 12
    assert np.array_equal(validation, validation_split(labels, train, 0.2, seed=2019)[1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("train")
    dataset = write_synthetic_dataset(folder / "synthetic.npz", per_class=32)
    # Small batches: batch norm's running statistics need a few dozen steps before eval mode works.
    settings = TrainSettings(epochs=8, batch_size=8, learning_rate=1e-3, threads=2)
    checkpoint = train_seeds(dataset, "tang2019", [0], settings, [folder / "checkpoint.pt"], [folder / "history.csv"])[0]
    return folder, dataset, checkpoint


def test_history_and_checkpoint_agree_on_the_best_epoch(trained):
    folder, _, checkpoint = trained
    history = pd.read_csv(folder / "history.csv")
    assert list(history["epoch"]) == list(range(1, 9))
    assert set(history.columns) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "best"}
    best = history.loc[history["val_loss"].idxmin()]
    assert checkpoint["best_epoch"] == best["epoch"]
    assert checkpoint["best_val_loss"] == pytest.approx(best["val_loss"])
    assert checkpoint["parameters"] > 0
    assert {"torch", "numpy", "device", "rgmorph"} <= set(checkpoint["environment"])


def test_checkpoint_says_where_the_training_time_went(trained):
    folder, _, checkpoint = trained
    # in the sidecar, not in the checkpoint file (which stays the same bytes from run to run)
    assert not {"train_seconds", "phase_seconds", "environment"} & set(torch.load(folder / "checkpoint.pt"))
    assert run_info_path(folder / "checkpoint.pt") == folder / "checkpoint.run.json"
    assert load_checkpoint(folder / "checkpoint.pt")[1]["phase_seconds"] == checkpoint["phase_seconds"]
    phases = checkpoint["phase_seconds"]
    assert set(phases) == {"training_steps", "batch_norm_statistics", "validation"}
    assert all(seconds > 0 for seconds in phases.values())
    # the phases are the epochs' work; the rest of train_seconds is logging and bookkeeping
    assert 0.5 * checkpoint["train_seconds"] < sum(phases.values()) <= checkpoint["train_seconds"] + 1e-3


def test_model_selection_never_sees_the_test_split(trained):
    _, dataset_path, checkpoint = trained
    dataset = load_dataset(dataset_path)
    test_names = set(dataset["names"][dataset["split"] == "test"])
    assert checkpoint["validation_names"] and not test_names & set(checkpoint["validation_names"])


def test_saved_checkpoint_reproduces_the_validation_score(trained):
    folder, dataset_path, checkpoint = trained
    dataset = load_dataset(dataset_path)
    model, loaded = load_checkpoint(folder / "checkpoint.pt")
    index = np.flatnonzero(np.isin(dataset["names"], loaded["validation_names"]))
    logits = predict_logits(model, torch.from_numpy(dataset["images"][index]).unsqueeze(1))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(dataset["labels"][index])).item()
    assert loss == pytest.approx(checkpoint["best_val_loss"], rel=1e-5)


def test_training_learns_an_easy_contrast(trained):
    folder, _, _ = trained
    history = pd.read_csv(folder / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_accuracy"].max() >= 0.9


def test_train_validation_catalogue_selects_on_the_datasets_own_validation_split():
    from rgmorph.training_data import fit_and_validation

    split = np.array(["train"] * 6 + ["validation"] * 3 + ["test"] * 2)
    dataset = {"split": split, "labels": np.array([0, 1] * 5 + [0])}
    fit, validation = fit_and_validation(dataset, TrainSettings(validation="catalogue"), "own.npz")
    assert list(fit) == list(range(6)) and list(validation) == [6, 7, 8]
    fit, validation = fit_and_validation(dataset, TrainSettings(validation="holdout", validation_fraction=0.4), "own.npz")
    assert set(fit) | set(validation) == set(range(6)) and not set(fit) & set(validation)
    with pytest.raises(ValueError, match="own.npz: train.validation is 'catalogue', but no source is in the validation"):
        fit_and_validation({**dataset, "split": np.where(split == "validation", "train", split)},
                           TrainSettings(validation="catalogue"), "own.npz")
