"""A damaged input is named with the rule that remakes it, and set aside so that the next run remakes it."""

from __future__ import annotations

import pytest

from conftest import write_synthetic_dataset
from rgmorph.checkpoint import load_checkpoint
from rgmorph.dataset import load_dataset
from rgmorph.files import DamagedFileError
from rgmorph.train import train_seeds
from rgmorph.train_settings import TrainSettings


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_dataset_is_named_and_set_aside_for_preprocess(tmp_path):
    dataset = write_synthetic_dataset(tmp_path / "FIRST.npz", per_class=4, size=32)
    _truncate(dataset)
    with pytest.raises(DamagedFileError, match=r"FIRST.npz is damaged .* 'preprocess' rule remakes it"):
        load_dataset(dataset)
    assert not dataset.exists() and (tmp_path / "FIRST.npz.damaged").is_file()


def test_a_corrupt_checkpoint_is_named_and_set_aside_for_train(tmp_path):
    dataset = write_synthetic_dataset(tmp_path / "d.npz", per_class=8, size=32)
    checkpoint = tmp_path / "seed0" / "checkpoint.pt"
    settings = TrainSettings(epochs=1, batch_size=8, threads=1, device="cpu")
    train_seeds(dataset, "lenet", [0], settings, [checkpoint], [tmp_path / "seed0" / "history.csv"])
    load_checkpoint(checkpoint)  # readable as written
    _truncate(checkpoint)
    with pytest.raises(DamagedFileError, match=r"checkpoint.pt is damaged .* 'train' rule remakes it"):
        load_checkpoint(checkpoint)
    assert not checkpoint.exists() and (checkpoint.parent / "checkpoint.pt.damaged").is_file()


def test_a_missing_file_is_not_called_damaged(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.npz")
