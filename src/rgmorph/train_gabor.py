"""Training of the Gabor-feature SVM (``rgmorph.models.gabor_svm``): not a network, so no epochs. For each
seed, C and gamma are chosen on the validation hold-out of the networks (by ``selection_metric``) and the
seed drives the Platt-scaling folds. The checkpoint is built by the same builder as the networks', with
the fitted arrays as ``estimator_state``; the history has one row."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from rgmorph.checkpoint import build_checkpoint, run_environment, save_checkpoint
from rgmorph.files import write_csv_atomic
from rgmorph.training_data import TrainingData
from rgmorph.train_settings import TrainSettings

log = logging.getLogger(__name__)

FEATURE_OPTIONS = ("orientations", "wavelengths", "polar_shape")


def _features(data: TrainingData, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray, dict, dict]:
    """(fit features, validation features, feature options, search grid) from ``settings.model_options``."""
    from rgmorph.models.gabor_svm import GaborSVM

    options = dict(settings.model_options)
    grid = {"C": options.pop("C_grid", None), "gamma": options.pop("gamma_grid", None)}
    feature_options = {key: options[key] for key in FEATURE_OPTIONS if key in options}
    features = GaborSVM(**feature_options).features(
        data.dataset["images"][np.concatenate([data.fit_index, data.validation_index])])
    count = len(data.fit_index)
    return features[:count], features[count:], feature_options, {k: v for k, v in grid.items() if v is not None}


def _training_scores(model, features: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    probabilities = model.predict_proba_features(features)
    loss = float(F.nll_loss(torch.log(torch.from_numpy(probabilities).clamp_min(1e-12)), torch.from_numpy(labels)))
    return loss, float(np.mean(probabilities.argmax(1) == labels))


def train_gabor_seeds(dataset_path: str | Path, model_name: str, seeds: Sequence[int], settings: TrainSettings,
                      checkpoint_paths: Sequence[str | Path], history_paths: Sequence[str | Path]) -> list[dict]:
    """Fit the Gabor-feature SVM on the fit part for each seed; write its checkpoint and one-row history."""
    from rgmorph.models.gabor_svm import select_svm

    started = time.monotonic()
    data = TrainingData.load(dataset_path, settings)
    fit_features, validation_features, feature_options, grid = _features(data, settings)
    fit_labels, validation_labels = data.dataset["labels"][data.fit_index], data.dataset["labels"][data.validation_index]
    seeds = [int(seed) for seed in seeds]
    checkpoints = []
    for k, seed in enumerate(seeds):
        choice = select_svm(fit_features, fit_labels, validation_features, validation_labels, seed=seed,
                            selection_metric=settings.selection_metric, feature_options=feature_options,
                            class_weight=None if settings.class_balance == "none" else "balanced", **grid)
        model = choice["model"]
        train_loss, train_accuracy = _training_scores(model, fit_features, fit_labels)
        row = {"epoch": 1, "train_loss": train_loss, "train_accuracy": train_accuracy,
               "val_loss": choice["val_loss"], "val_accuracy": choice["val_accuracy"],
               "learning_rate": float("nan"), "seconds": time.monotonic() - started, "best": True}
        checkpoint = build_checkpoint(
            model_name=model_name, settings=asdict(settings), data=data.record(), seed=seed, seeds=seeds,
            best={"epoch": 1, "val_loss": choice["val_loss"], "val_accuracy": choice["val_accuracy"]},
            parameters=model.parameter_count(), trainable_parameters=model.parameter_count(),
            origin={"kind": "scratch", "trained_on": data.survey, "frozen": []}, estimator_state=model.state(),
            chosen={"C": choice["C"], "gamma": choice["gamma"]})
        run_info = {"environment": run_environment(torch.device("cpu")), "train_seconds": time.monotonic() - started}
        checkpoints.append(save_checkpoint(checkpoint_paths[k], checkpoint, run_info))
        write_csv_atomic(history_paths[k], pd.DataFrame([row]))
        log.info("%s %s seed %d: C %s, gamma %s chosen on validation (loss %.4f, accuracy %.3f)", model_name,
                 data.survey, seed, choice["C"], choice["gamma"], choice["val_loss"], choice["val_accuracy"])
    return checkpoints
