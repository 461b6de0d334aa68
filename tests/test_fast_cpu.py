"""The fast CPU path (rgmorph.fast_cpu): its layers compute what the plain ones do, 'auto' falls back to fp32
where the CPU has no bf16, and in bf16 two seeds trained together equal each seed trained alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rgmorph import fast_cpu
from rgmorph.batched import SeedBatch, SeedRun
from rgmorph.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
from rgmorph.train import TrainSettings


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setenv("RGMORPH_NO_BF16", "1")
    fast_cpu.cpu_has_bf16.cache_clear()
    yield
    fast_cpu.cpu_has_bf16.cache_clear()


@pytest.mark.parametrize("kernel, size", [(11, 150), (11, 37), (5, 32), (6, 17)])
def test_space_to_depth_convolution_equals_the_direct_one(kernel, size):
    generator = torch.Generator().manual_seed(kernel * size)
    images = torch.randn(3, 1, size, size, generator=generator)
    weight, bias = torch.randn(6, 1, kernel, kernel, generator=generator), torch.randn(6, generator=generator)
    want = F.conv2d(images, weight, bias)
    got = fast_cpu.space_to_depth_conv2d(images, weight, bias)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fast_layers_keep_the_parameters_and_the_outputs():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 4, 11), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.Flatten(),
                          nn.Linear(8 * 22 * 22, 3))
    fast = fast_cpu.use_fast_layers(nn.Sequential(*[layer for layer in __import__("copy").deepcopy(plain)]))
    assert [type(layer) for layer in fast] == [fast_cpu.SpaceToDepthConv2d, nn.ReLU, fast_cpu.ChannelsLastConv2d,
                                               nn.Flatten, fast_cpu.Fp32Linear]
    assert plain.state_dict().keys() == fast.state_dict().keys()
    images = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(fast(images), plain(images), rtol=1e-5, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast[-1](torch.randn(2, 8 * 22 * 22)).dtype == torch.float32  # the linear layer stays fp32
        out = fast(images)
    torch.testing.assert_close(out.float(), plain(images), rtol=0.05, atol=0.05)  # bf16: 8 bits of mantissa


def test_auto_is_fp32_on_a_cpu_without_bf16_and_explicit_choices_stand(no_bf16):
    assert fast_cpu.resolve_precision("auto", "cpu") == "fp32"
    assert fast_cpu.resolve_precision("bf16", "cpu") == "bf16" and fast_cpu.resolve_precision("fp32", "cpu") == "fp32"
    assert fast_cpu.inference_precision("bf16", "cpu") == "fp32"  # scored in fp32 where bf16 is not native
    with pytest.raises(ValueError, match="'fp16' is not one of"):
        fast_cpu.resolve_precision("fp16", "cpu")


def _data(count=12, size=48):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(count, 1, size, size, generator=generator)
    labels = torch.arange(count) % 2
    return [(images[:8], labels[:8], images[8:], labels[8:])]


def _train(precision: str, seeds: list[int], model: str = "tang2019", epochs: int = 2):
    settings = TrainSettings(learning_rate=1e-3, lr_schedule="constant", batch_size=4, precision=precision,
                             )
    trainer = SeedBatch(model, [SeedRun(seed) for seed in seeds], _data(size=84 if model == "tang2019" else 48),
                        settings, "cpu")
    records = [trainer.train_epoch() + trainer.validate() for _ in range(epochs)]
    return trainer, records


def test_auto_on_a_cpu_without_bf16_trains_exactly_as_fp32(no_bf16):
    auto, auto_records = _train("auto", [0])
    fp32, fp32_records = _train("fp32", [0])
    assert auto.precision == "fp32"
    for got, want in zip(auto_records, fp32_records):
        assert all((g == w).all() for g, w in zip(got, want))
    state, want = auto.current_state(0), fp32.current_state(0)
    assert all(torch.equal(state[key], want[key]) for key in want)


@pytest.mark.parametrize("model", ["tang2019", "lenet"])
def test_in_bf16_two_seeds_trained_together_equal_each_trained_alone_bit_for_bit(model):
    together, together_records = _train("bf16", [3, 4], model)
    assert together.precision == "bf16"
    for k, seed in enumerate([3, 4]):
        alone, alone_records = _train("bf16", [seed], model)
        for got, want in zip(together_records, alone_records):  # loss, accuracy, val loss, val accuracy
            assert all(g[k] == w[0] for g, w in zip(got, want)), f"seed {seed}"
        state, want = together.current_state(k), alone.current_state(0)
        assert all(torch.equal(state[key], want[key]) for key in want), f"seed {seed}"


def test_bf16_changes_the_arithmetic_only_within_rounding():
    bf16, bf16_records = _train("bf16", [0], epochs=1)
    fp32, fp32_records = _train("fp32", [0], epochs=1)
    assert bf16_records[0][0][0] != fp32_records[0][0][0]  # another path, not fp32 by another name
    assert bf16_records[0][0][0] == pytest.approx(fp32_records[0][0][0], rel=0.02)


def test_a_checkpoint_records_its_precision_and_is_scored_in_it(tmp_path):
    trainer, _ = _train("bf16", [0], epochs=1)
    data = {"class_names": ["FRI", "FRII"], "survey": "FIRST", "image_size": 84, "validation_names": [],
            "dataset": "d.npz", "dataset_sha256": "0" * 64, "pixel_scale_arcsec": 1.8}
    checkpoint = build_checkpoint(model_name="tang2019", settings={"model_options": {}}, data=data, seed=0, seeds=[0],
                                  best={"epoch": 1, "val_loss": 0.7, "val_accuracy": 0.5}, parameters=1,
                                  trainable_parameters=1, origin={"kind": "scratch"},
                                  state_dict=trainer.current_state(0), precision=trainer.precision)
    save_checkpoint(tmp_path / "checkpoint.pt", checkpoint, {"environment": {}})
    model, loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    assert loaded["precision"] == "bf16"
    expected = fast_cpu.Bf16Inference if fast_cpu.cpu_has_bf16() else nn.Module
    assert isinstance(model, expected)
    images = _data(size=84)[0][2]
    with torch.no_grad():
        assert model(images).dtype == torch.float32


def _with_random_batch_norm(model: nn.Module) -> nn.Module:
    """``model`` in eval mode with batch-norm scales of both signs (a negative one turns max-pooling into min)."""
    generator = torch.Generator().manual_seed(1)
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.weight.data = torch.randn(layer.num_features, generator=generator)
            layer.bias.data = torch.randn(layer.num_features, generator=generator)
            layer.running_mean = torch.randn(layer.num_features, generator=generator)
            layer.running_var = torch.rand(layer.num_features, generator=generator) + 0.5
    return model.eval()


@pytest.mark.parametrize("name, size", [("tang2019", 150), ("tang2019", 121), ("lenet", 48), ("lenet", 37)])
def test_scoring_pools_in_phase_with_the_values_of_the_unfused_layers_bit_for_bit(name, size):
    import copy

    from rgmorph import models

    torch.manual_seed(size)
    model = _with_random_batch_norm(models.build(name, in_channels=1, num_classes=2, image_size=size))
    unfused = fast_cpu.use_fast_layers(copy.deepcopy(model)).eval()
    scoring = fast_cpu.Bf16Inference(copy.deepcopy(model)).eval()
    first_run = list(scoring.model.features)
    assert type(scoring.model.features) is fast_cpu.PhasePooledSequential
    assert fast_cpu._phase_pooled_run_end(first_run, 0) == (4 if name == "tang2019" else 3)
    assert scoring.state_dict().keys() == {f"model.{key}" for key in model.state_dict()}
    images = torch.rand(5, 1, size, size)
    with torch.no_grad(), fast_cpu.autocast("bf16", "cpu"):
        want = unfused(images).float()
    with torch.no_grad():
        got = scoring(images)
    assert torch.equal(got, want)


def test_phase_pooling_is_off_in_training_mode():
    from rgmorph import models

    model = models.build("tang2019", in_channels=1, num_classes=2, image_size=121)
    scoring = fast_cpu.Bf16Inference(model).train()
    images = torch.rand(4, 1, 121, 121)
    # batch statistics over the pooled pixels would differ: training runs the layers one by one
    features = scoring.model.features
    with torch.no_grad(), fast_cpu.autocast("bf16", "cpu"):
        assert torch.equal(features(images), nn.Sequential.forward(features, images))


def test_a_batch_norm_without_running_statistics_is_not_pooled_in_phase():
    # it normalises with the batch's statistics, which pooling first would change
    layers = [fast_cpu.SpaceToDepthConv2d(1, 4, 5), nn.ReLU(), nn.BatchNorm2d(4, track_running_stats=False).eval(),
              nn.MaxPool2d(2)]
    assert fast_cpu._phase_pooled_run_end(layers, 0) is None
    layers[2] = nn.BatchNorm2d(4).eval()
    assert fast_cpu._phase_pooled_run_end(layers, 0) == 4
