"""Several seeds (and models) trained as one batched model (a seed batch): each seed run gets the results
of a run of its own, its own random streams, and a state that loads into the registry model."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from rgmorph import models
from rgmorph.augment import random_affine_matrices
from rgmorph.batched import (D4Average, Freeze, RunStreams, SeedBatch, SeedRun, affine_matrices,
                             average_log_probabilities, d4_views)
from rgmorph.train import TrainingData, TrainSettings, load_checkpoint, predict_logits, train_seeds
from conftest import write_synthetic_dataset

SETTINGS = TrainSettings(epochs=3, batch_size=8, threads=1, device="cpu")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("batched") / "synthetic.npz", per_class=16, size=48)


def _tiny_settings(**values):
    # fp32: these tests hold the batched machinery to the registry model's fp32 arithmetic (test_fast_cpu: bf16)
    return TrainSettings(learning_rate=1e-3, lr_schedule="constant", **{"precision": "fp32", **values})


def _tiny_data(count=12, size=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, size, size, generator=generator)
    labels = torch.arange(count) % 2
    return images[:8], labels[:8], images[8:], labels[8:]


def test_a_seed_trained_beside_another_equals_the_seed_trained_alone(dataset, tmp_path):
    group = train_seeds(dataset, "lenet", [0, 1], SETTINGS, [tmp_path / "g0.pt", tmp_path / "g1.pt"],
                        [tmp_path / "g0.csv", tmp_path / "g1.csv"])
    alone = train_seeds(dataset, "lenet", [1], SETTINGS, [tmp_path / "a1.pt"], [tmp_path / "a1.csv"])[0]
    # on the CPU the runs' passes run one by one: bit for bit a lone run
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


def test_one_batched_forward_for_all_runs_equals_one_forward_per_run():
    data = _tiny_data()
    states, losses = [], []
    for strategy in ("vmap", "loop"):
        trainer = SeedBatch("lenet", [SeedRun(0), SeedRun(1)], [data], _tiny_settings(batch_size=4, strategy=strategy),
                            "cpu")
        losses.append(np.concatenate([trainer.train_epoch()[0] for _ in range(2)]))
        states.append([trainer.current_state(k) for k in range(2)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    for vmapped, looped in zip(*states):
        for key in looped:
            torch.testing.assert_close(vmapped[key], looped[key], rtol=1e-3, atol=1e-5, msg=key)


@pytest.mark.parametrize("name", models.available())
def test_every_network_trains_as_one_batched_model_and_each_run_loads_into_the_registry_model(name):
    size = {"tang2019": 96, "dn_equivariant": 64, "cn_equivariant": 64}.get(name, 48)
    options = {"width": 8} if name == "resnet" else {}
    data = _tiny_data(size=size)
    # vmap, as on a GPU
    trainer = SeedBatch(name, [SeedRun(0), SeedRun(1)], [data],
                        _tiny_settings(batch_size=4, strategy="vmap", model_options=options), "cpu")
    losses, accuracy = trainer.train_epoch()
    assert np.isfinite(losses).all() and losses.shape == (2,)
    trainer.keep_best([True, True])
    logits = trainer.run_logits([data[2], data[2]])
    for index in range(2):
        model = models.build(name, image_size=size, **options)
        model.load_state_dict(trainer.best_state(index))
        torch.testing.assert_close(predict_logits(model, data[2]), logits[index], rtol=1e-4, atol=1e-5)


def test_dropout_layers_are_found_with_their_shapes():
    trainer = SeedBatch("lenet", [SeedRun(0)], [_tiny_data()], _tiny_settings(batch_size=4), "cpu")
    assert trainer.dropout_sites == {"classifier.5.mask": (0.5, (84,))}


def test_d4_test_time_augmentation_in_validation_matches_the_saved_model():
    data = _tiny_data()
    trainer = SeedBatch("lenet", [SeedRun(0)], [data], _tiny_settings(batch_size=4), "cpu")
    trainer.train_epoch()
    trainer.keep_best([True], tta="d4")
    model = models.build("lenet", image_size=48)
    model.load_state_dict(trainer.best_state(0, tta="d4"))
    wrapped = D4Average(model)
    torch.testing.assert_close(predict_logits(wrapped, data[2]), trainer.run_logits([data[2]], tta="d4")[0],
                               rtol=1e-4, atol=1e-5)
    assert len(d4_views(data[2])) == 8
    # log-probabilities: a softmax leaves them as they are
    out = average_log_probabilities([torch.randn(3, 2), torch.randn(3, 2)])
    torch.testing.assert_close(torch.log_softmax(out, -1), out)


def test_a_saved_d4_checkpoint_loads_with_its_test_time_augmentation(dataset, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=8, threads=1, device="cpu", test_time_augmentation="d4")
    checkpoint = train_seeds(dataset, "lenet", [0], settings, [tmp_path / "c.pt"], [tmp_path / "h.csv"])[0]
    model, loaded = load_checkpoint(tmp_path / "c.pt")
    assert isinstance(model, D4Average) and loaded["test_time_augmentation"] == "d4"
    assert checkpoint["kind"] == "scratch" and checkpoint["trained_on"] == "SYNTH" and checkpoint["frozen"] == []


def test_auto_test_time_augmentation_keeps_the_better_way_on_validation(dataset, tmp_path):
    settings = TrainSettings(epochs=2, batch_size=8, threads=1, device="cpu", test_time_augmentation="auto")
    checkpoint = train_seeds(dataset, "lenet", [0], settings, [tmp_path / "c.pt"], [tmp_path / "h.csv"])[0]
    scores = checkpoint["test_time_augmentation_scores"]
    chosen = checkpoint["test_time_augmentation"]
    assert chosen in ("none", "d4") and set(scores) == {"none", "d4"}
    assert scores[chosen]["val_loss"] == min(score["val_loss"] for score in scores.values())
    # the epoch is selected on the single view; D4 scores that same state
    history = pd.read_csv(tmp_path / "h.csv")
    selected = history.loc[history["val_loss"].idxmin()]
    assert checkpoint["best_epoch"] == selected["epoch"] == scores["d4"]["epoch"] == scores["none"]["epoch"]
    assert scores["none"]["val_loss"] == pytest.approx(selected["val_loss"], abs=1e-12)
    model, _ = load_checkpoint(tmp_path / "c.pt")
    assert isinstance(model, D4Average) == (chosen == "d4")
    _, _, images, labels = TrainingData.load(dataset, settings).tensors()
    eight_views = D4Average(model.model if chosen == "d4" else model).eval()
    with torch.no_grad():
        d4_loss = torch.nn.functional.nll_loss(eight_views(torch.as_tensor(images)), torch.as_tensor(labels))
    assert float(d4_loss) == pytest.approx(scores["d4"]["val_loss"], rel=1e-5)


def test_recomputed_batch_norm_statistics_are_those_of_the_fit_images():
    data = _tiny_data()  # 8 fit images: one batch of 8
    trainer = SeedBatch("resnet", [SeedRun(0), SeedRun(1)], [data],
                        _tiny_settings(batch_size=8, model_options={"width": 8}), "cpu")
    trainer.train_epoch()
    trainer.buffers["features.1.running_mean"].fill_(123.0)  # stale statistics are replaced, not blended
    trainer.recompute_batch_norm()
    for index in range(2):
        model = models.build("resnet", image_size=48, width=8)
        model.load_state_dict(trainer.current_state(index))
        with torch.no_grad():
            stem = model.features[0](data[0])  # the input of the first batch-norm layer
        torch.testing.assert_close(model.features[1].running_mean, stem.mean((0, 2, 3)), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(model.features[1].running_var, stem.var((0, 2, 3), unbiased=True), rtol=1e-4,
                                   atol=1e-6)
    for frozen_batch_norm, kept in (("keep", True), ("adapt", False)):
        frozen = SeedBatch("resnet", [SeedRun(0)], [data], _tiny_settings(batch_size=8, model_options={"width": 8}),
                           "cpu", freeze=Freeze(("features",), frozen_batch_norm))
        before = frozen.buffers["features.1.running_mean"].clone()
        frozen.recompute_batch_norm()
        assert torch.equal(frozen.buffers["features.1.running_mean"], before) == kept, frozen_batch_norm


@pytest.mark.parametrize("frozen_batch_norm", ["adapt", "keep"])
def test_a_frozen_trunk_run_once_for_validation_scores_as_the_whole_network_every_epoch(frozen_batch_norm):
    """Freezing 'features' whole lets validation keep the trunk's outputs; freezing each of its layers by name
    takes the general path (the whole network every epoch): the scores and statistics must be the same."""
    data = _tiny_data(count=16)
    settings = _tiny_settings(batch_size=4, batch_norm_images=4, model_options={"width": 8})
    layers = tuple(f"features.{name}" for name, _ in models.build("resnet", width=8).features.named_children())
    trainers = [SeedBatch("resnet", [SeedRun(0), SeedRun(1)], [data], settings, "cpu",
                          freeze=Freeze(prefixes, frozen_batch_norm)) for prefixes in (("features",), layers)]
    assert [trainer.trunk_is_constant for trainer in trainers] == [True, False]
    for _ in range(3):
        scores = []
        for trainer in trainers:
            trainer.train_epoch()
            trainer.recompute_batch_norm()
            scores.append([trainer.validate(tta) for tta in ("none", "d4")])
        for name, value in trainers[1].buffers.items():
            if not name.endswith("num_batches_tracked"):
                assert torch.equal(trainers[0].buffers[name], value), name
        np.testing.assert_array_equal(np.array(scores[0]), np.array(scores[1]))
    assert set(trainers[0].validation_features) == {"none", "d4"}
    for trainer in trainers:  # statistics over other images (all of them) are the trunk's too
        trainer.recompute_batch_norm(images=0)
    np.testing.assert_array_equal(*(np.array(trainer.validate()) for trainer in trainers))


def test_the_learning_rate_follows_the_cosine_schedule_of_torch_and_resumes_with_it():
    data = _tiny_data()
    settings = TrainSettings(batch_size=4, epochs=4, learning_rate=1e-3, lr_schedule="cosine")
    trainer = SeedBatch("lenet", [SeedRun(0)], [data], settings, "cpu")
    rates = []
    for _ in range(2):
        rates.append(trainer.learning_rate)
        trainer.train_epoch()
    resumed = SeedBatch("lenet", [SeedRun(0)], [data], settings, "cpu")
    resumed.load_state_dict(trainer.state_dict())
    for _ in range(2):
        rates.append(resumed.learning_rate)
        resumed.train_epoch()
    # the closed form the schedule has always had, bit for bit
    assert rates == [1e-3 * (1 + math.cos(math.pi * (epoch - 1) / 4)) / 2 for epoch in range(1, 5)]


PAGE_FAULTS_OF_A_REPEATED_STEP = """
import resource, sys, torch
from rgmorph.batched import SeedBatch, SeedRun
from rgmorph.train_settings import TrainSettings
if sys.argv[1] == "training":  # a CPU seed batch sets the allocator up for the whole process
    images, labels = torch.rand(12, 1, 48, 48), torch.arange(12) % 2
    SeedBatch("lenet", [SeedRun(0)], [(images[:8], labels[:8], images[8:], labels[8:])], TrainSettings(), "cpu")
def step():  # a 64 MB gradient-sized buffer, filled and freed, as every training step does
    torch.empty(16 * 2**20).fill_(1.0)
for _ in range(3):  # warm-up
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_cpu_training_reuses_freed_memory_instead_of_faulting_in_fresh_pages_every_step():
    faults = {mode: int(subprocess.run([sys.executable, "-c", PAGE_FAULTS_OF_A_REPEATED_STEP, mode], check=True,
                                       capture_output=True, text=True).stdout)
              for mode in ("default", "training")}
    # by default each 64 MB buffer is mapped afresh: 16384 pages of 4 KiB faulted in at every step
    assert faults["default"] >= 10 * 16000 and faults["training"] < 2 * 16384, faults
