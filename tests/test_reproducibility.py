"""Same seed on the CPU, same numbers, bit for bit; another seed, other numbers; a seed trained beside
others gives what it gives alone, at the published settings; and every run records the library versions
and the device it ran on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from rgmorph import settings as study
from rgmorph.batched import SeedBatch, SeedRun
from rgmorph.evaluate import evaluate_checkpoint
from rgmorph.fetch import FetchSettings, Survey, fetch_survey
from rgmorph.preprocess import build_dataset
from rgmorph.train import TrainSettings, train_seeds
from conftest import CLASS_NAMES, QUICKSTART_MIRROR, REPO, balanced_subset

# The smallest input the tang2019 network accepts: its last 5x5 max-pool needs 5x5 features.
IMAGE_SIZE = 84
# ResNet pools globally: any size will do, and 16 pixels (1x1 after its third stage) keeps it quick
IMAGE_SIZES = {"tang2019": IMAGE_SIZE, "resnet": 16}
SEEDS = [0, 1, 2]


def _real_dataset(folder: Path, sources: pd.DataFrame, size: int) -> Path:
    """Real FIRST cutouts of ``sources`` at ``size`` x ``size``, made by the pipeline's own functions."""
    manifest = fetch_survey(sources, Survey("FIRST", "VLA FIRST (1.4 GHz)", 150), folder / "cutouts",
                            folder / "manifest.csv", FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    build_dataset(sources, manifest, folder / "cutouts", folder / "FIRST.npz", CLASS_NAMES, "FIRST", size=size)
    return folder / "FIRST.npz"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, quickstart_sources):
    """16 real FIRST cutouts (4 per class and split) at 84x84."""
    return _real_dataset(tmp_path_factory.mktemp("data"), balanced_subset(quickstart_sources, 4), IMAGE_SIZE)


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


TRAIN = """
import json, sys
from pathlib import Path
from rgmorph.train import TrainSettings, train_seeds
dataset, model, folder, values, seeds = sys.argv[1], sys.argv[2], Path(sys.argv[3]), *map(json.loads, sys.argv[4:])
train_seeds(dataset, model, seeds, TrainSettings.from_mapping(values),
            [folder / f"seed{seed}" / "checkpoint.pt" for seed in seeds],
            [folder / f"seed{seed}" / "history.csv" for seed in seeds])
"""


def _published_settings(model: str) -> dict:
    """The published study's settings for ``model`` (config.yaml + published.yaml), shortened to 2 epochs."""
    config = study.load([REPO / "config" / "config.yaml", REPO / "config" / "published.yaml"])
    values = {**study.model_settings(config, model), "threads": config["train"]["threads"]}
    assert (values["threads"], values["test_time_augmentation"], values["checkpoint_interval_s"]) == (1, "auto", 120)
    # batches of 5 from 8 fit images: two steps an epoch, the second one short
    return {**values, "epochs": 2, "batch_size": 5, "device": "cpu"}


def _train_in_a_process(dataset: Path, model: str, folder: Path, seeds: list[int]) -> None:
    arguments = [str(dataset), model, str(folder), json.dumps(_published_settings(model)), json.dumps(seeds)]
    done = subprocess.run([sys.executable, "-c", TRAIN, *arguments], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _assert_same_seed_records(together: Path, alone: Path, seed: int) -> None:
    got = torch.load(together / f"seed{seed}" / "checkpoint.pt", weights_only=True)
    want = torch.load(alone / f"seed{seed}" / "checkpoint.pt", weights_only=True)
    assert got.pop("trained_with_seeds") == SEEDS and want.pop("trained_with_seeds") == [seed]
    got_state, want_state = got.pop("state_dict"), want.pop("state_dict")
    assert got_state.keys() == want_state.keys()
    for key, value in want_state.items():
        assert torch.equal(got_state[key], value), f"seed {seed}: {key}"
    assert got == want  # chosen epoch, test-time augmentation, validation scores, settings: everything else
    got_history, want_history = (pd.read_csv(folder / f"seed{seed}" / "history.csv").drop(columns="seconds")
                                 for folder in (together, alone))
    assert set(got["test_time_augmentation_scores"]) == {"none", "d4"}  # 'auto' scored both ways
    pd.testing.assert_frame_equal(got_history, want_history, check_exact=True)
    got_run, want_run = (json.loads((folder / f"seed{seed}" / "checkpoint.run.json").read_text())
                         for folder in (together, alone))
    assert got_run["environment"] == want_run["environment"] and want_run["environment"]["threads"] == 1


@pytest.mark.parametrize("model", ["tang2019", "resnet"])  # both with batch norm
def test_at_the_published_settings_each_of_three_seeds_trained_together_equals_the_seed_trained_alone(
        model, tmp_path, quickstart_sources):
    dataset = _real_dataset(tmp_path / "data", balanced_subset(quickstart_sources, 5), IMAGE_SIZES[model])
    _train_in_a_process(dataset, model, tmp_path / "together", SEEDS)
    for seed in SEEDS:
        _train_in_a_process(dataset, model, tmp_path / f"alone{seed}", [seed])
        _assert_same_seed_records(tmp_path / "together", tmp_path / f"alone{seed}", seed)


@pytest.fixture
def published_threads():
    """Two threads in this process, for one test: how a multi-threaded CPU run sums."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("tta", ["none", "d4"])
@pytest.mark.parametrize("validation_size", [8, 17, 40])
def test_validation_scores_of_runs_batched_together_equal_those_of_each_run_alone(tta, validation_size,
                                                                                  published_threads):
    generator = torch.Generator().manual_seed(validation_size)
    fit, images = (torch.rand(count, 1, 32, 32, generator=generator) for count in (4, validation_size))
    data = [(fit, torch.arange(4) % 2, images, torch.arange(validation_size) % 2)]
    settings = TrainSettings(threads=2, device="cpu")
    # LeNet at 32 pixels: what is tested is how the runs' outputs are combined, not the network
    together = SeedBatch("lenet", [SeedRun(seed) for seed in SEEDS], data, settings)
    outputs, (losses, accuracies) = together.run_logits([images] * len(SEEDS), tta=tta), together.validate(tta)
    for k, seed in enumerate(SEEDS):
        alone = SeedBatch("lenet", [SeedRun(seed)], data, settings)
        # every image's output, then the scores: a last-bit difference in one image may vanish in the mean
        assert torch.equal(outputs[k], alone.run_logits([images], tta=tta)[0]), f"seed {seed}"
        assert (losses[k], accuracies[k]) == tuple(score[0] for score in alone.validate(tta)), f"seed {seed}"
