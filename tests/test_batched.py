"""Several seeds (and models) trained as one batched model: each member gets the results of a run of its
own, its own random streams, and a state that loads into the registry model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rgmorph import models
from rgmorph.augment import random_affine_matrices
from rgmorph.batched import (D4Average, EngineOptions, GroupTrainer, Member, RunStreams, affine_matrices,
                             average_log_probabilities, d4_views)
from rgmorph.train import TrainSettings, load_checkpoint, predict_logits, train_group, train_model
from conftest import write_synthetic_dataset

SETTINGS = TrainSettings(epochs=3, batch_size=8, threads=1, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("batched") / "synthetic.npz", per_class=16, size=48)


def _tiny_data(count=12, size=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, size, size, generator=generator)
    labels = torch.arange(count) % 2
    return images[:8], labels[:8], images[8:], labels[8:]


def test_a_seed_trained_beside_another_equals_the_seed_trained_alone(dataset, tmp_path):
    group = train_group(dataset, "lenet", [0, 1], SETTINGS, [tmp_path / "g0.pt", tmp_path / "g1.pt"],
                        [tmp_path / "g0.csv", tmp_path / "g1.csv"])
    alone = train_model(dataset, "lenet", 1, SETTINGS, tmp_path / "a1.pt", tmp_path / "a1.csv")
    # on the CPU the members' passes run one by one: bit for bit a lone run
    for key, value in alone["state_dict"].items():
        assert torch.equal(group[1]["state_dict"][key], value), key
    together, single = pd.read_csv(tmp_path / "g1.csv"), pd.read_csv(tmp_path / "a1.csv")
    pd.testing.assert_frame_equal(together.drop(columns="seconds"), single.drop(columns="seconds"))
    assert group[1]["best_epoch"] == alone["best_epoch"]
    assert group[1]["trained_with_seeds"] == [0, 1] and group[0]["seed"] == 0
    # different seeds really are different runs
    assert not torch.equal(group[0]["state_dict"]["classifier.1.weight"], group[1]["state_dict"]["classifier.1.weight"])


def test_augmentation_draws_give_the_transform_of_the_augment_module():
    draws = torch.rand(16, 3, generator=torch.Generator().manual_seed(5))
    expected = random_affine_matrices(16, torch.Generator().manual_seed(5), "cpu")
    torch.testing.assert_close(affine_matrices(draws), expected)
    no_flips = affine_matrices(draws, hflip=False, vflip=False)
    assert torch.allclose(torch.linalg.det(no_flips[:, :, :2]), torch.ones(16))


def test_random_streams_depend_only_on_the_seed():
    sites = {"head.mask": (0.5, (7,))}
    first, again, other = RunStreams(3).epoch(10, sites), RunStreams(3).epoch(10, sites), RunStreams(4).epoch(10, sites)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert torch.equal(first[2]["head.mask"], again[2]["head.mask"])
    assert not torch.equal(first[1], other[1])
    assert sorted(first[0].tolist()) == list(range(10))
    # the streams of one run are not each other's: shuffling and augmentation draws are unrelated
    streams = RunStreams(0)
    assert not torch.equal(torch.rand(5, generator=streams.generators["shuffle"]),
                           torch.rand(5, generator=streams.generators["augment"]))


def test_one_batched_forward_for_all_members_equals_one_forward_per_member():
    data = _tiny_data()
    states, losses = [], []
    for strategy in ("vmap", "loop"):
        trainer = GroupTrainer("lenet", {}, [Member(0), Member(1)], [data], EngineOptions(batch_size=4, strategy=strategy),
                               "cpu")
        losses.append(np.concatenate([trainer.train_epoch(1e-3)[0] for _ in range(2)]))
        states.append([trainer.member_state(k, slot=None) for k in range(2)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    for vmapped, looped in zip(*states):
        for key in looped:
            torch.testing.assert_close(vmapped[key], looped[key], rtol=1e-3, atol=1e-5, msg=key)


@pytest.mark.parametrize("name", models.available())
def test_every_network_trains_as_one_batched_model_and_each_member_loads_into_the_registry_model(name):
    size = {"tang2019": 96, "dn_equivariant": 64}.get(name, 48)
    options = {"width": 8} if name == "resnet" else {}
    data = _tiny_data(size=size)
    # vmap, as on a GPU
    trainer = GroupTrainer(name, options, [Member(0), Member(1)], [data],
                           EngineOptions(batch_size=4, strategy="vmap"), "cpu")
    losses, accuracy = trainer.train_epoch(1e-3)
    assert np.isfinite(losses).all() and losses.shape == (2,)
    trainer.keep_best([True, True])
    logits = trainer.member_logits([data[2], data[2]])
    for index in range(2):
        model = models.build(name, image_size=size, **options)
        model.load_state_dict(trainer.member_state(index))
        torch.testing.assert_close(predict_logits(model, data[2]), logits[index], rtol=1e-4, atol=1e-5)


def test_dropout_layers_are_found_with_their_shapes():
    trainer = GroupTrainer("lenet", {}, [Member(0)], [_tiny_data()], EngineOptions(batch_size=4), "cpu")
    assert trainer.dropout_sites == {"classifier.5.mask": (0.5, (84,))}


def test_d4_test_time_augmentation_in_validation_matches_the_saved_model():
    data = _tiny_data()
    trainer = GroupTrainer("lenet", {}, [Member(0)], [data],
                           EngineOptions(batch_size=4, test_time_augmentation="d4"), "cpu")
    trainer.train_epoch(1e-3)
    trainer.keep_best([True])
    model = models.build("lenet", image_size=48)
    model.load_state_dict(trainer.member_state(0))
    wrapped = D4Average(model)
    torch.testing.assert_close(predict_logits(wrapped, data[2]), trainer.member_logits([data[2]])[0],
                               rtol=1e-4, atol=1e-5)
    assert len(d4_views(data[2])) == 8
    # log-probabilities: a softmax leaves them as they are
    out = average_log_probabilities([torch.randn(3, 2), torch.randn(3, 2)])
    torch.testing.assert_close(torch.log_softmax(out, -1), out)


def test_a_saved_d4_checkpoint_loads_with_its_test_time_augmentation(dataset, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=8, threads=1, device="cpu", test_time_augmentation="d4")
    checkpoint = train_model(dataset, "lenet", 0, settings, tmp_path / "c.pt", tmp_path / "h.csv")
    model, loaded = load_checkpoint(tmp_path / "c.pt")
    assert isinstance(model, D4Average) and loaded["test_time_augmentation"] == "d4"
    assert checkpoint["mode"] == "scratch" and checkpoint["trained_on"] == "SYNTH" and checkpoint["frozen"] == []


def test_auto_test_time_augmentation_keeps_the_better_way_on_validation(dataset, tmp_path):
    settings = TrainSettings(epochs=2, batch_size=8, threads=1, device="cpu", test_time_augmentation="auto")
    checkpoint = train_model(dataset, "lenet", 0, settings, tmp_path / "c.pt", tmp_path / "h.csv")
    scores = checkpoint["test_time_augmentation_scores"]
    chosen = checkpoint["test_time_augmentation"]
    assert chosen in ("none", "d4") and set(scores) == {"none", "d4"}
    assert scores[chosen]["val_loss"] == min(score["val_loss"] for score in scores.values())
    history = pd.read_csv(tmp_path / "h.csv")
    assert history["val_loss"].tolist() == history[f"val_loss_{chosen}"].tolist()
    assert checkpoint["best_epoch"] == history.loc[history["val_loss"].idxmin(), "epoch"]
    model, _ = load_checkpoint(tmp_path / "c.pt")
    assert isinstance(model, D4Average) == (chosen == "d4")


def test_recomputed_batch_norm_statistics_are_those_of_the_fit_images():
    data = _tiny_data()  # 8 fit images: one batch of 8
    trainer = GroupTrainer("resnet", {"width": 8}, [Member(0), Member(1)], [data], EngineOptions(batch_size=8), "cpu")
    trainer.train_epoch(1e-3)
    trainer.buffers["features.1.running_mean"].fill_(123.0)  # stale statistics are replaced, not blended
    trainer.recompute_batch_norm()
    for index in range(2):
        model = models.build("resnet", image_size=48, width=8)
        model.load_state_dict(trainer.member_state(index, slot=None))
        with torch.no_grad():
            stem = model.features[0](data[0])  # the input of the first batch-norm layer
        torch.testing.assert_close(model.features[1].running_mean, stem.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(model.features[1].running_var, stem.var((0, 2, 3), unbiased=True), rtol=1e-4,
                                   atol=1e-6)
    for frozen_batch_norm, kept in (("keep", True), ("adapt", False)):
        frozen = GroupTrainer("resnet", {"width": 8}, [Member(0)], [data],
                              EngineOptions(batch_size=8, frozen=("features",), frozen_batch_norm=frozen_batch_norm),
                              "cpu")
        before = frozen.buffers["features.1.running_mean"].clone()
        frozen.recompute_batch_norm()
        assert torch.equal(frozen.buffers["features.1.running_mean"], before) == kept, frozen_batch_norm
