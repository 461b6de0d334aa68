"""Same seed on the CPU, same numbers, bit for bit; another seed, other numbers; and every run
records the library versions and the device it ran on."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from rgmorph.evaluate import evaluate_checkpoint
from rgmorph.fetch import FetchSettings, Survey, fetch_survey
from rgmorph.preprocess import build_dataset
from rgmorph.train import TrainSettings, train_seeds
from conftest import CLASS_NAMES, QUICKSTART_MIRROR, balanced_subset

# The smallest input the tang2019 network accepts: its last 5x5 max-pool needs 5x5 features.
IMAGE_SIZE = 84


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, quickstart_sources):
    """16 real FIRST cutouts (4 per class and split) at 84x84, made by the pipeline's own functions."""
    folder = tmp_path_factory.mktemp("data")
    sources = balanced_subset(quickstart_sources, 4)
    manifest = fetch_survey(sources, Survey("FIRST", "VLA FIRST (1.4 GHz)", 150), folder / "cutouts",
                            folder / "manifest.csv", FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    build_dataset(sources, manifest, folder / "cutouts", folder / "FIRST.npz", CLASS_NAMES, "FIRST", size=IMAGE_SIZE)
    return folder / "FIRST.npz"


def _run(dataset, folder, seed: int) -> dict:
    folder.mkdir()
    settings = TrainSettings(epochs=2, batch_size=4, device="cpu", threads=1)
    checkpoint = train_seeds(dataset, "tang2019", [seed], settings, [folder / "checkpoint.pt"],
                             [folder / "history.csv"])[0]
    report = evaluate_checkpoint(checkpoint_path=folder / "checkpoint.pt", dataset_path=dataset,
                                 metrics_path=folder / "metrics.json", predictions_path=folder / "predictions.csv",
                                 n_resamples=20)  # few bootstrap resamples: seeded, and fast
    return {
        "history": pd.read_csv(folder / "history.csv").drop(columns="seconds"),  # wall time is not a result
        "state": checkpoint["state_dict"],
        "environment": checkpoint["environment"],
        "metrics": {key: value for key, value in json.loads((folder / "metrics.json").read_text()).items() if key != "run"},
        "run": report["run"],
        "predictions": pd.read_csv(folder / "predictions.csv"),
    }


def test_same_seed_on_the_cpu_gives_identical_results_and_another_seed_does_not(tmp_path, dataset):
    first, again, other = _run(dataset, tmp_path / "a", 0), _run(dataset, tmp_path / "b", 0), _run(dataset, tmp_path / "c", 1)

    # bit for bit: exact equality of every float, no tolerance
    pd.testing.assert_frame_equal(first["history"], again["history"], check_exact=True)
    assert first["state"].keys() == again["state"].keys()
    assert all(torch.equal(first["state"][key], again["state"][key]) for key in first["state"])
    assert first["metrics"] == again["metrics"]
    pd.testing.assert_frame_equal(first["predictions"], again["predictions"], check_exact=True)

    assert not first["history"][["train_loss", "val_loss"]].equals(other["history"][["train_loss", "val_loss"]])
    assert not all(torch.equal(first["state"][key], other["state"][key]) for key in first["state"])

    for environment in (first["environment"], first["run"]["environment"]):
        assert environment["device"] == "cpu"
        assert environment["torch"] == torch.__version__
        assert {"numpy", "python", "rgmorph"} <= set(environment)
