"""Training resumes from its last state (last.pt) after a crash or a kill -9 and ends bit for bit where an
uninterrupted run ends (on the CPU, same thread count)."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from rgmorph import train
from rgmorph.train import NetworkTraining, TrainSettings, default_state_path, train_seeds
from conftest import REPO, write_synthetic_dataset

SEEDS = [0, 3]
EPOCHS = 4
SETTINGS = TrainSettings(epochs=EPOCHS, batch_size=8, threads=1, device="cpu")


class Interrupted(RuntimeError):
    pass


def _paths(folder):
    return ([folder / f"seed{seed}" / "checkpoint.pt" for seed in SEEDS],
            [folder / f"seed{seed}" / "history.csv" for seed in SEEDS])


def _train(dataset, folder, settings=SETTINGS, **options):
    checkpoints, histories = _paths(folder)
    return train_seeds(dataset, "lenet", SEEDS, settings, checkpoints, histories, **options)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("resume") / "synthetic.npz", per_class=16, size=48)


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    _train(dataset, folder)
    return folder


def _assert_same_results(folder, reference):
    for got_path, want_path in zip(*(_paths(folder)[0], _paths(reference)[0])):
        got = torch.load(got_path, weights_only=True)
        want = torch.load(want_path, weights_only=True)
        assert got["state_dict"].keys() == want["state_dict"].keys()
        for key, value in want["state_dict"].items():
            assert torch.equal(got["state_dict"][key], value), key
        for key in ("best_epoch", "best_val_loss", "best_val_accuracy", "seed"):
            assert got[key] == want[key], key
    for got_path, want_path in zip(*(_paths(folder)[1], _paths(reference)[1])):
        got, want = pd.read_csv(got_path), pd.read_csv(want_path)
        pd.testing.assert_frame_equal(got.drop(columns="seconds"), want.drop(columns="seconds"), check_exact=True)
    assert not default_state_path(_paths(folder)[0]).exists()  # removed once the checkpoints are written


def test_an_exception_after_epoch_2_then_a_rerun_gives_the_uninterrupted_result(dataset, tmp_path, uninterrupted):
    def crash(epoch):
        if epoch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _train(dataset, tmp_path, on_epoch_end=crash)
    state = torch.load(default_state_path(_paths(tmp_path)[0]), weights_only=True)
    assert state["epoch"] == 2 and not _paths(tmp_path)[0][0].exists()
    resumed_from = []
    _train(dataset, tmp_path, on_epoch_end=resumed_from.append)
    assert resumed_from == [3, 4]  # only the missing epochs ran
    _assert_same_results(tmp_path, uninterrupted)


DRIVER = """
import sys, time
from pathlib import Path
from rgmorph.train import TrainSettings, train_seeds
dataset, folder = sys.argv[1], Path(sys.argv[2])
def pause(epoch):
    print(f"EPOCH {epoch}", flush=True)
    if epoch == 2:
        time.sleep(60)  # epoch 2's state is saved: the test kills it here
train_seeds(dataset, "lenet", [0, 3], TrainSettings(epochs=4, batch_size=8, threads=1, device="cpu"),
            [folder / f"seed{s}" / "checkpoint.pt" for s in (0, 3)],
            [folder / f"seed{s}" / "history.csv" for s in (0, 3)], on_epoch_end=pause)
"""


def test_kill9_after_epoch_2_then_a_rerun_gives_the_uninterrupted_result(dataset, tmp_path, uninterrupted):
    process = subprocess.Popen([sys.executable, "-c", DRIVER, str(dataset), str(tmp_path)], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 120
    for line in process.stdout:
        if line.strip() == "EPOCH 2" or time.monotonic() > deadline:
            break
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert torch.load(default_state_path(_paths(tmp_path)[0]), weights_only=True)["epoch"] == 2
    assert not any(path.exists() for path in _paths(tmp_path)[0])
    _train(dataset, tmp_path)
    _assert_same_results(tmp_path, uninterrupted)


def _epochs_after_a_crash_and_a_rerun_with(dataset, tmp_path, other: TrainSettings) -> list[int]:
    def crash(epoch):
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        _train(dataset, tmp_path, on_epoch_end=crash)
    epochs = []
    _train(dataset, tmp_path, settings=other, on_epoch_end=epochs.append)
    return epochs


def test_state_from_other_settings_is_not_resumed(dataset, tmp_path):
    other = TrainSettings(epochs=2, batch_size=8, threads=1, device="cpu", learning_rate=5e-4)
    # started again: the saved state was for another learning rate
    assert _epochs_after_a_crash_and_a_rerun_with(dataset, tmp_path, other) == [1, 2]


def test_a_damaged_state_file_means_a_fresh_start(dataset, tmp_path):
    state = default_state_path(_paths(tmp_path)[0])
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(b"not a torch file")
    epochs = []
    _train(dataset, tmp_path, settings=TrainSettings(epochs=1, batch_size=8, threads=1, device="cpu"),
           on_epoch_end=epochs.append)
    assert epochs == [1] and not state.exists()


def test_state_from_another_thread_count_is_not_resumed(dataset, tmp_path):
    other = dataclasses.replace(SETTINGS, threads=2)  # only the thread count differs
    # on the CPU the thread count can change the sums: started again
    assert _epochs_after_a_crash_and_a_rerun_with(dataset, tmp_path, other) == [1, 2, 3, 4]


def _epochs_take_50_seconds(monkeypatch) -> list[int]:
    """A trainer clock that moves 50 s per epoch; returns the list of epochs whose state was saved."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(train, "time", SimpleNamespace(monotonic=lambda: clock.now))
    epoch, save_state, saved = NetworkTraining.epoch, NetworkTraining.save_state, []

    def timed_epoch(self, number):
        epoch(self, number)
        clock.now += 50.0

    def recorded_save(self, number):
        saved.append(number)
        save_state(self, number)

    monkeypatch.setattr(NetworkTraining, "epoch", timed_epoch)
    monkeypatch.setattr(NetworkTraining, "save_state", recorded_save)
    return saved


def test_with_the_published_checkpoint_interval_a_crash_resumes_from_the_last_saved_epoch(dataset, tmp_path,
                                                                                           monkeypatch):
    settings = TrainSettings(epochs=6, batch_size=8, threads=2, device="cpu", checkpoint_interval_s=120)
    _train(dataset, tmp_path / "uninterrupted", settings)
    saved = _epochs_take_50_seconds(monkeypatch)

    def crash(epoch):
        if epoch == 5:
            raise Interrupted

    with pytest.raises(Interrupted):
        _train(dataset, tmp_path / "run", settings, on_epoch_end=crash)
    assert saved == [3]  # due only 150 s after the start; epochs 4 and 5 are lost
    assert torch.load(default_state_path(_paths(tmp_path / "run")[0]), weights_only=True)["epoch"] == 3
    epochs = []
    _train(dataset, tmp_path / "run", settings, on_epoch_end=epochs.append)
    assert epochs == [4, 5, 6]
    _assert_same_results(tmp_path / "run", tmp_path / "uninterrupted")
