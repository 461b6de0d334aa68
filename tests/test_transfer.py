"""Transfer learning: a network trained on one survey, fine-tuned on another with layers frozen, carries its
provenance into the checkpoint and metrics.json; the workflow plans both directions beside the scratch runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from rgmorph.evaluate import evaluate_checkpoint
from rgmorph.train import TrainSettings, TransferSpec, train_seeds
from conftest import REPO, write_synthetic_dataset

SETTINGS = TrainSettings(epochs=2, batch_size=8, threads=1, device="cpu", model_options={"width": 8})
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("transfer")
    source = write_synthetic_dataset(folder / "SRC.npz", per_class=16, size=48, seed=0, survey="SRC")
    target = write_synthetic_dataset(folder / "TGT.npz", per_class=16, size=48, seed=1, survey="TGT")
    pretrained = [folder / "SRC" / f"seed{seed}" / "checkpoint.pt" for seed in SEEDS]
    train_seeds(source, "resnet", SEEDS, SETTINGS, pretrained,
                [folder / "SRC" / f"seed{seed}" / "history.csv" for seed in SEEDS])
    fine_tuned = [folder / "TGT" / "transfer-from-SRC" / f"seed{seed}" / "checkpoint.pt" for seed in SEEDS]
    checkpoints = train_seeds(target, "resnet", SEEDS, SETTINGS, fine_tuned,
                              [path.with_name("history.csv") for path in fine_tuned],
                              transfer=TransferSpec("SRC", pretrained, frozen=["features"]))
    return folder, target, pretrained, fine_tuned, checkpoints


def test_frozen_layers_keep_the_pretrained_weights_and_adapt_their_batch_norm_statistics(runs):
    _, _, pretrained, _, checkpoints = runs
    for path, checkpoint in zip(pretrained, checkpoints):
        before = torch.load(path, weights_only=True)["state_dict"]
        after = checkpoint["state_dict"]
        statistics = [key for key in before if key.startswith("features.") and "running_" in key]
        for key, value in before.items():
            if key.startswith("features.") and key not in statistics and "num_batches" not in key:
                assert torch.equal(after[key], value), key  # weights, batch-norm scales and shifts
        # the new survey's statistics (AdaBN)
        assert not any(torch.equal(after[key], before[key]) for key in statistics)
        assert not torch.equal(after["classifier.2.weight"], before["classifier.2.weight"])
        assert checkpoint["trainable_parameters"] == 8 * 8 * 2 + 2 < checkpoint["parameters"]
        assert checkpoint["frozen_batch_norm"] == "adapt"


def test_frozen_batch_norm_can_keep_the_pretrained_statistics(runs, tmp_path):
    folder, target, pretrained, _, _ = runs
    kept = train_seeds(target, "resnet", [0], SETTINGS, [tmp_path / "c.pt"], [tmp_path / "h.csv"],
                       transfer=TransferSpec("SRC", pretrained[:1], frozen=["features"], batch_norm="keep"))[0]
    before = torch.load(pretrained[0], weights_only=True)["state_dict"]
    for key, value in before.items():
        if key.startswith("features."):
            assert torch.equal(kept["state_dict"][key], value), key


def test_checkpoint_and_metrics_say_what_was_transferred(runs, tmp_path):
    folder, target, pretrained, fine_tuned, checkpoints = runs
    checkpoint = checkpoints[1]
    assert checkpoint["kind"] == "transfer" and checkpoint["pretrained_on"] == "SRC"
    assert checkpoint["trained_on"] == "SRC" and checkpoint["survey"] == "TGT"
    assert checkpoint["frozen"] == ["features"] and checkpoint["pretrained_checkpoint"] == str(pretrained[1])
    report = evaluate_checkpoint(fine_tuned[1], target, tmp_path / "metrics.json", tmp_path / "predictions.csv",
                                 n_resamples=20)
    run = json.loads((tmp_path / "metrics.json").read_text())["run"]
    assert run["model"] == "resnet" and run["survey"] == "TGT" and run["trained_on"] == "SRC"
    assert run["kind"] == "transfer" and run["pretrained_on"] == "SRC" and run["frozen"] == ["features"]
    assert 0 <= report["accuracy"] <= 1


def test_fine_tuning_from_another_architecture_is_refused(runs, tmp_path):
    _, target, pretrained, _, _ = runs
    with pytest.raises(ValueError, match="model_name"):
        train_seeds(target, "lenet", [0], TrainSettings(epochs=1, device="cpu"), [tmp_path / "c.pt"],
                    [tmp_path / "h.csv"], transfer=TransferSpec("SRC", pretrained[:1]))


def test_an_unknown_frozen_layer_is_named(runs, tmp_path):
    _, target, pretrained, _, _ = runs
    with pytest.raises(AttributeError, match="convolutions"):
        train_seeds(target, "resnet", [0], SETTINGS, [tmp_path / "c.pt"], [tmp_path / "h.csv"],
                    transfer=TransferSpec("SRC", pretrained[:1], frozen=["convolutions"]))


def _plan(tmp_path, transfer):
    config = {"results_dir": str(tmp_path / "results"),
              "train": {"models": ["tang2019", "lenet"], "seeds": [0, 1, 2]}, "transfer": transfer}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile",
                           "config/quickstart.yaml", str(tmp_path / "config.yaml")], cwd=REPO, capture_output=True,
                          text=True)


def test_the_workflow_plans_both_directions_beside_the_scratch_runs(tmp_path):
    result = _plan(tmp_path, {"models": ["tang2019"], "directions": [{"from": "NVSS", "to": "FIRST"},
                                                                   {"from": "FIRST", "to": "NVSS"}]})
    assert result.returncode == 0, result.stderr[-3000:]
    counts = dict(line.split()[:2] for line in result.stdout.splitlines()
                  if line[:1].isalpha() and line.split()[-1].isdigit())
    assert counts["train"] == "4"  # (survey, model) jobs, each training its 3 seeds
    assert counts["train_transfer"] == "2" and counts["evaluate_transfer"] == "6"
    assert counts["evaluate"] == str(2 * 2 * 3)
