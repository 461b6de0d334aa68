"""The decision rule of a trained network (``train.decision``): argmax of its probabilities, or argmax
after per-class offsets on the log-probabilities fitted on the run's own validation hold-out.

'balanced' moves the boundaries towards a rare class (Bent: 46 of 1065 training sources) by adding
b_k to log p_k, with b chosen to maximise the validation balanced accuracy (mean recall over classes);
it is the validation-chosen counterpart of logit adjustment (Menon et al. 2021). The test set is never
used: the offsets are fitted once per run on validation, then applied unchanged to every other split.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.metrics import balanced_accuracy_score

# Offsets are searched on this grid (natural-log units: +1 multiplies a class's odds by e).
OFFSET_GRID = np.round(np.arange(-3.0, 3.0001, 0.1), 1)
COORDINATE_ROUNDS = 3


def balanced_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean recall over the classes present in ``labels`` (scikit-learn's)."""
    with warnings.catch_warnings():  # a class predicted but absent from labels has no recall: left out, as meant
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(labels, predicted))


def adjusted_probabilities(probabilities: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """softmax(log p + offsets): the same network with its class priors shifted."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) + offsets
    logits -= logits.max(axis=1, keepdims=True)
    odds = np.exp(logits)
    return odds / odds.sum(axis=1, keepdims=True)


def fit_class_offsets(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Offsets (class 0's fixed at 0) that maximise balanced accuracy on (labels, probabilities), by
    coordinate ascent over OFFSET_GRID; among equal scores the smallest offset wins (argmax if it ties)."""
    class_count = probabilities.shape[1]
    log_probabilities = np.log(np.clip(probabilities, 1e-12, 1.0))
    offsets = np.zeros(class_count)

    def score(candidate: np.ndarray) -> float:
        return balanced_accuracy(labels, (log_probabilities + candidate).argmax(1))

    for _ in range(COORDINATE_ROUNDS):
        changed = False
        for k in range(1, class_count):
            trials = []
            for value in OFFSET_GRID:
                candidate = offsets.copy()
                candidate[k] = value
                trials.append((score(candidate), -abs(value), value))
            best = max(trials)[2]
            changed |= best != offsets[k]
            offsets[k] = best
        if not changed:
            break
    return offsets


def cross_fitted_balanced_accuracy(labels: np.ndarray, probabilities: np.ndarray, folds: int = 2) -> float:
    """Balanced accuracy of the rule out of sample: each fold of the validation sources (every class dealt
    round-robin over the folds) decided with the offsets fitted on the other folds."""
    fold = np.zeros(len(labels), dtype=int)
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        fold[members] = np.arange(len(members)) % folds
    predicted = np.zeros(len(labels), dtype=int)
    for held in range(folds):
        fitted = fit_class_offsets(labels[fold != held], probabilities[fold != held])
        predicted[fold == held] = adjusted_probabilities(probabilities[fold == held], fitted).argmax(1)
    return balanced_accuracy(labels, predicted)


def decision_record(class_names, offsets: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                    applied: bool) -> dict:
    """What metrics.json says of the 'balanced' rule: the offsets, whether this split's predictions use them
    (not on the validation hold-out they are fitted on) and the validation balanced accuracy with argmax, with the
    offsets (in sample) and cross-fitted (out of sample: whether the rule helps, judged on validation alone)."""
    return {
        "rule": "balanced", "applied": applied, "offsets": {name: float(value) for name, value in zip(class_names, offsets)},
        "validation_sources": int(len(labels)),
        "validation_balanced_accuracy_argmax": balanced_accuracy(labels, probabilities.argmax(1)),
        "validation_balanced_accuracy_fitted": balanced_accuracy(
            labels, adjusted_probabilities(probabilities, offsets).argmax(1)),
        # the honest estimate: fitted on half the hold-out, scored on the other half
        "validation_balanced_accuracy_cross_fitted": cross_fitted_balanced_accuracy(labels, probabilities),
    }
