"""train.decision 'balanced': class offsets fitted on the run's validation hold-out, applied to test only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rgmorph.decision import (adjusted_probabilities, balanced_accuracy, cross_fitted_balanced_accuracy,
                              fit_class_offsets)

CLASSES = ["FRI", "FRII", "Bent"]


def _under_predicted_bent(count: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a network that calls most Bent sources FRI (a rare class pulled to a big one)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 3
    logits = rng.normal(0, 0.3, (count, 3)) + 2.0 * np.eye(3)[labels]
    logits[labels == 2, 2] -= 2.3  # Bent's own score below FRI's for most Bent sources
    logits[labels == 2, 0] += 0.5
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probabilities


def test_offsets_raise_the_rare_class_and_the_balanced_accuracy():
    labels, probabilities = _under_predicted_bent()
    before = balanced_accuracy(labels, probabilities.argmax(1))
    offsets = fit_class_offsets(labels, probabilities)
    after = adjusted_probabilities(probabilities, offsets).argmax(1)
    assert offsets[0] == 0 and offsets[2] > 0.5
    assert balanced_accuracy(labels, after) > before + 0.2
    assert np.mean(after[labels == 2] == 2) > np.mean(probabilities.argmax(1)[labels == 2] == 2)


def test_the_cross_fitted_estimate_is_out_of_sample():
    labels, probabilities = _under_predicted_bent()
    argmax = balanced_accuracy(labels, probabilities.argmax(1))
    in_sample = balanced_accuracy(labels, adjusted_probabilities(probabilities, fit_class_offsets(labels, probabilities))
                                  .argmax(1))
    assert argmax < cross_fitted_balanced_accuracy(labels, probabilities) <= in_sample
    # noise alone: offsets fitted on one half gain nothing real on the other
    rng = np.random.default_rng(1)
    noise = rng.dirichlet(np.ones(3), 60)
    noise_labels = np.arange(60) % 3
    assert cross_fitted_balanced_accuracy(noise_labels, noise) < balanced_accuracy(
        noise_labels, adjusted_probabilities(noise, fit_class_offsets(noise_labels, noise)).argmax(1))


def test_a_network_already_right_keeps_argmax():
    labels = np.array([0, 1, 2, 0, 1, 2])
    probabilities = np.full((6, 3), 0.1) + 0.7 * np.eye(3)[labels]
    assert fit_class_offsets(labels, probabilities).tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(adjusted_probabilities(probabilities, np.zeros(3)), probabilities, rtol=1e-12)


def test_adjusted_probabilities_are_a_distribution_and_shift_odds_by_the_offset():
    probabilities = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    adjusted = adjusted_probabilities(probabilities, np.array([0.0, 0.0, np.log(2.0)]))
    np.testing.assert_allclose(adjusted.sum(1), 1.0)
    np.testing.assert_allclose(adjusted[:, 2] / adjusted[:, 0], 2 * probabilities[:, 2] / probabilities[:, 0])


def _evaluate(tmp_path, monkeypatch, decision: str | None, split: str, validation_names=None):
    """evaluate_checkpoint with the network replaced by fixed logits per source (image value = row)."""
    import torch

    import rgmorph.train
    from rgmorph.evaluate import evaluate_checkpoint

    labels, probabilities = _under_predicted_bent(count=180)
    names = np.array([f"J{i:04d}" for i in range(180)])
    dataset = tmp_path / "FIRST.npz"
    np.savez(dataset, images=np.repeat(np.arange(180, dtype=np.float32), 4).reshape(180, 2, 2), labels=labels,
             names=names, split=np.array(["train"] * 90 + ["test"] * 90), class_names=np.array(CLASSES),
             survey=np.array("FIRST"))
    settings = {} if decision is None else {"decision": decision}
    checkpoint = {"survey": "FIRST", "model_name": "tang2019", "seed": 0, "pretrained_on": "", "parameters": 1,
                  "best_epoch": 1, "best_val_accuracy": 0.5, "best_val_loss": 1.0, "class_names": CLASSES,
                  "settings": settings,
                  "validation_names": names[:90].tolist() if validation_names is None else validation_names}
    monkeypatch.setattr(rgmorph.train, "load_checkpoint", lambda path, device: (None, checkpoint))
    logits = torch.from_numpy(np.log(probabilities)).float()
    monkeypatch.setattr(rgmorph.train, "predict_logits", lambda model, images: logits[images[:, 0, 0, 0].long()])
    (tmp_path / "checkpoint.pt").write_bytes(b"stand-in")
    report = evaluate_checkpoint(tmp_path / "checkpoint.pt", dataset, tmp_path / "metrics.json",
                                 tmp_path / "predictions.csv", n_resamples=20, split=split)
    return report, pd.read_csv(tmp_path / "predictions.csv"), labels, probabilities


def test_balanced_runs_are_scored_with_offsets_fitted_on_validation_alone(tmp_path, monkeypatch):
    report, predictions, labels, probabilities = _evaluate(tmp_path, monkeypatch, "balanced", "test")
    offsets = fit_class_offsets(labels[:90], probabilities[:90].astype(np.float32).astype(np.float64))
    assert json.loads((tmp_path / "metrics.json").read_text())["class_offsets"]["offsets"]["Bent"] == offsets[2] > 0
    assert report["class_offsets"]["applied"] and report["class_offsets"]["validation_sources"] == 90
    assert report["decision"] == "argmax after class_offsets"
    record = report["class_offsets"]
    assert (record["validation_balanced_accuracy_argmax"] < record["validation_balanced_accuracy_cross_fitted"]
            <= record["validation_balanced_accuracy_fitted"])
    assert (report["class_offsets"]["validation_balanced_accuracy_fitted"]
            > report["class_offsets"]["validation_balanced_accuracy_argmax"])
    expected = adjusted_probabilities(probabilities[90:], offsets).argmax(1)
    assert (predictions["predicted"].to_numpy() == expected).mean() > 0.98  # float32 logits: a tie may flip
    assert report["per_class"]["Bent"]["recall"] > np.mean(probabilities[90:].argmax(1)[labels[90:] == 2] == 2)


def test_argmax_runs_and_the_validation_split_keep_the_networks_own_scores(tmp_path, monkeypatch):
    report, predictions, labels, probabilities = _evaluate(tmp_path, monkeypatch, None, "test")
    assert report["decision"] == "argmax" and "class_offsets" not in report
    assert (predictions["predicted"].to_numpy() == probabilities[90:].argmax(1)).all()
    report, predictions, _, _ = _evaluate(tmp_path, monkeypatch, "balanced", "validation")
    assert report["class_offsets"]["applied"] is False and report["class_offsets"]["offsets"]["Bent"] > 0
    assert report["decision"] == "argmax"
    assert (predictions["predicted"].to_numpy() == probabilities[:90].argmax(1)).all()


def test_the_schema_defaults_to_argmax_and_refuses_other_rules():
    from conftest import REPO

    from rgmorph import settings
    from rgmorph.train_settings import TrainSettings

    config = settings.load([REPO / "config" / "config.yaml"])
    assert config["train"]["decision"] == "argmax" == TrainSettings.from_mapping(config["train"]).decision
    assert settings.load([REPO / "config" / "config.yaml"], {"train": {"decision": "balanced"}})["train"]["decision"]
    with pytest.raises(Exception, match="'median' is not one of \\['argmax', 'balanced'\\]"):
        settings.load([REPO / "config" / "config.yaml"], {"train": {"decision": "median"}})


def test_a_balanced_run_whose_validation_sources_are_not_in_the_dataset_is_refused(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"none of the run's 2 validation sources is in .*FIRST.npz"):
        _evaluate(tmp_path, monkeypatch, "balanced", "test", validation_names=["elsewhere-1", "elsewhere-2"])
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "predictions.csv").exists()
