"""train.weight_averaging 'ema': validation, selection and checkpoints use an exponential moving average of each
seed's weights, which leaves the training trajectory as it was and keeps seeds trained together equal to alone."""

from __future__ import annotations

import pytest
import torch

from rgmorph.batched import SeedBatch, SeedRun
from rgmorph.settings import load as load_study
from rgmorph.train import TrainSettings


def _data(count=12, size=48):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 1, size, size, generator=generator)
    labels = torch.arange(count) % 2
    return [(images[:8], labels[:8], images[8:], labels[8:])]


def _trainer(seeds, **options):
    settings = TrainSettings(learning_rate=1e-3, lr_schedule="constant", batch_size=4, precision="fp32", **options)
    return SeedBatch("lenet", [SeedRun(seed) for seed in seeds], _data(), settings, "cpu")


def _epochs(trainer, epochs=2):
    records = []
    for _ in range(epochs):
        trained = trainer.train_epoch()
        trainer.recompute_batch_norm()
        scores = trainer.validate()
        trainer.keep_best([True] * len(trainer.runs))
        records.append(trained + scores)
    return records


def _equal_records(got, want, k=0):
    return all(g[k] == w[0] for record_got, record_want in zip(got, want) for g, w in zip(record_got, record_want))


def test_a_decay_of_zero_is_training_without_averaging():
    plain, averaged = _trainer([0]), _trainer([0], weight_averaging="ema", ema_decay=0.0)
    assert _equal_records(_epochs(averaged), _epochs(plain))
    want, got = plain.best_state(0), averaged.best_state(0)
    assert all(torch.equal(got[key], want[key]) for key in want)


def test_the_average_is_the_ema_of_the_weights_after_each_step(monkeypatch):
    trainer = _trainer([0], weight_averaging="ema", ema_decay=0.9)
    after_steps, original = [], SeedBatch._after_step

    def recording(self):
        after_steps.append({name: self.params[name].detach().clone() for name in self.trainable_names})
        original(self)

    monkeypatch.setattr(SeedBatch, "_after_step", recording)
    initial = {name: trainer.params[name].detach().clone() for name in trainer.trainable_names}
    _epochs(trainer, epochs=3)
    assert len(after_steps) == 3 * 2  # 8 fit images in batches of 4
    expected = initial
    for step, weights in enumerate(after_steps):
        decay = min(0.9, (1 + step) / (10 + step))
        expected = {name: value.lerp(weights[name], 1.0 - decay) for name, value in expected.items()}
    for name, value in expected.items():
        torch.testing.assert_close(trainer.averaged[name], value, rtol=0, atol=0)
    # the training trajectory is the plain one: the average only changes what is scored and kept
    plain = _trainer([0])
    _epochs(plain, epochs=3)
    assert all(torch.equal(plain.params[name], trainer.params[name]) for name in trainer.trainable_names)
    kept = trainer.best_state(0)
    assert all(torch.equal(kept[name], trainer.averaged[name][0]) for name in trainer.trainable_names)
    assert not all(torch.equal(kept[name], plain.best_state(0)[name]) for name in trainer.trainable_names)


def test_with_averaging_two_seeds_trained_together_equal_each_alone():
    together = _trainer([3, 4], weight_averaging="ema", ema_decay=0.8)
    together_records = _epochs(together)
    for k, seed in enumerate([3, 4]):
        alone = _trainer([seed], weight_averaging="ema", ema_decay=0.8)
        assert _equal_records(together_records, _epochs(alone), k), f"seed {seed}"
        assert all(torch.equal(together.best_state(k)[key], value) for key, value in alone.best_state(0).items())


def test_a_resumed_run_goes_on_with_its_average():
    straight = _trainer([0], weight_averaging="ema", ema_decay=0.9)
    want = _epochs(straight, epochs=2)
    first = _trainer([0], weight_averaging="ema", ema_decay=0.9)
    _epochs(first, epochs=1)
    resumed = _trainer([0], weight_averaging="ema", ema_decay=0.9)
    resumed.load_state_dict(first.state_dict())
    resumed.steps_done = first.steps_done
    got = _epochs(resumed, epochs=1)
    assert _equal_records(got, want[1:])
    assert all(torch.equal(resumed.averaged[name], straight.averaged[name]) for name in straight.averaged)


def test_averaging_needs_recomputed_batch_norm_statistics():
    with pytest.raises(ValueError, match="weight_averaging 'ema' needs train.batch_norm_statistics 'recomputed'"):
        _trainer([0], weight_averaging="ema", batch_norm_statistics="running")


def test_the_schema_takes_weight_averaging_and_refuses_a_decay_of_one():
    study = load_study(["config/quickstart.yaml"], {"train": {"weight_averaging": "ema", "ema_decay": 0.995}})
    assert study["train"]["weight_averaging"] == "ema" and TrainSettings.from_mapping(study["train"]).ema_decay == 0.995
    with pytest.raises(Exception, match="ema_decay"):
        load_study(["config/quickstart.yaml"], {"train": {"ema_decay": 1.0}})
