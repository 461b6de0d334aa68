"""Classification metrics for FRI/FRII morphology, in plain numpy.

Conventions: labels are integers 0..K-1. In the binary case class 1 (FRII) is
the positive class and ``scores`` are the predicted probability of class 1;
the FRI-positive view uses ``1 - scores``. Where a ratio is 0/0 (a class that is
never predicted or never present) it is reported as 0.0, as scikit-learn does
with ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

# Metcalf et al. 2019: TPR10 is the TPR "where less than ten false positives"
# are made, i.e. at most nine. See tpr_before_false_positives.
TPR0_ALLOWED_FALSE_POSITIVES = 0
TPR10_ALLOWED_FALSE_POSITIVES = 9


# ---------------------------------------------------------------- validation


def _as_1d(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def _check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = " but ".join(f"{name} has {n} entries" for name, n in lengths.items())
        raise ValueError(f"length mismatch: {described}")


def _as_labels(name: str, values, num_classes: int | None = None) -> np.ndarray:
    array = _as_1d(name, values)
    if array.dtype == bool:
        array = array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite integer class labels")
    as_int = array.astype(np.int64)
    if not np.array_equal(as_int, array):
        raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    if num_classes is not None:
        outside = as_int[(as_int < 0) | (as_int >= num_classes)]
        if outside.size:
            raise ValueError(
                f"{name} has labels outside 0..{num_classes - 1}: {sorted(set(outside.tolist()))}"
            )
    return as_int


def _as_scores(name: str, values) -> np.ndarray:
    array = _as_1d(name, values).astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _binary_inputs(true, scores) -> tuple[np.ndarray, np.ndarray]:
    true = _as_labels("true", true, num_classes=2)
    scores = _as_scores("scores", scores)
    _check_same_length(true=true, scores=scores)
    return true, scores


def _ranked_counts(is_positive: np.ndarray, scores: np.ndarray):
    """Cumulative (tp, fp) at each distinct score, highest first, starting from (0, 0).

    Tied scores are one group: a threshold can only admit all of them or none.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_positive = is_positive[order]
    group_ends = np.flatnonzero(np.diff(sorted_scores) != 0)
    group_ends = np.append(group_ends, sorted_scores.size - 1)
    tp = np.cumsum(sorted_positive)[group_ends]
    fp = (group_ends + 1) - tp
    thresholds = np.concatenate([[np.inf], sorted_scores[group_ends]])
    return np.concatenate([[0], tp]), np.concatenate([[0], fp]), thresholds


# ---------------------------------------------------- thresholded predictions


def confusion_matrix(true, predicted, num_classes: int) -> np.ndarray:
    """(K, K) int counts; rows are true classes, columns predicted classes."""
    true = _as_labels("true", true, num_classes)
    predicted = _as_labels("predicted", predicted, num_classes)
    _check_same_length(true=true, predicted=predicted)
    flat = np.bincount(true * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # 0/0 -> 0.0 by the module convention; the denominator is never negative.
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def per_class_precision_recall_f1(true, predicted, num_classes: int) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (floats) and support (ints), each of length K.

    A 0/0 ratio (class never predicted, never present, or precision = recall = 0)
    is 0.0.
    """
    counts = confusion_matrix(true, predicted, num_classes)
    true_positives = np.diag(counts)
    support = counts.sum(axis=1)
    precision = _safe_divide(true_positives, counts.sum(axis=0))
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def accuracy(true, predicted) -> float:
    """Fraction of samples whose predicted label equals the true label."""
    true = _as_labels("true", true)
    predicted = _as_labels("predicted", predicted)
    _check_same_length(true=true, predicted=predicted)
    return float(np.mean(true == predicted))


# ------------------------------------------------------------ ranking metrics


def roc_curve(true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) with one point per distinct score, from (0, 0) to (1, 1).

    ``thresholds[i]`` is the lowest score admitted at point i (predict positive
    when score >= threshold); ``thresholds[0]`` is +inf, the point that admits
    nothing. Equals ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    true, scores = _binary_inputs(true, scores)
    n_positive = int(true.sum())
    n_negative = true.size - n_positive
    if n_positive == 0 or n_negative == 0:
        present = "positive (1)" if n_positive else "negative (0)"
        raise ValueError(
            f"ROC curve is undefined: only one class present in true (all {present})"
        )
    tp, fp, thresholds = _ranked_counts(true == 1, scores)
    return fp / n_negative, tp / n_positive, thresholds


def auroc(true, scores) -> float:
    """Area under the tie-aware ROC curve by the trapezoid rule.

    Equals Mann-Whitney U / (n_pos * n_neg) with each tied positive-negative
    pair counted as 1/2. Raises ValueError if only one class is present.
    """
    fpr, tpr, _ = roc_curve(true, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def tpr_before_false_positives(
    true, scores, allowed_false_positives: int, positive_class: int = 1
) -> float:
    """Highest TPR reached by a score threshold that admits at most ``allowed_false_positives``.

    This generalises TPR0 and TPR10 of the strong-gravitational-lens finding
    challenge (Metcalf et al. 2019, A&A 625, A119): "TPR0 is the highest TPR
    reached, as a function of threshold, before a single false positive" and
    "TPR10 the TPR where less than ten false positives" are made. We read
    "less than ten" literally, so ``tpr10`` uses ``allowed_false_positives=9``.

    Samples are ranked by descending score; tied scores are admitted or
    rejected together (no threshold can split a tie), so a top group holding a
    negative gives TPR0 = 0. With no negatives at all the answer is 1.0.
    ``positive_class=0`` treats FRI as positive and ranks by ``1 - scores``.
    Raises ValueError if the positive class is absent (TPR undefined).
    """
    true, scores = _binary_inputs(true, scores)
    if positive_class not in (0, 1):
        raise ValueError(f"positive_class must be 0 or 1, got {positive_class!r}")
    if allowed_false_positives < 0:
        raise ValueError(f"allowed_false_positives must be >= 0, got {allowed_false_positives}")
    is_positive = true == positive_class
    n_positive = int(is_positive.sum())
    if n_positive == 0:
        raise ValueError(f"TPR is undefined: positive class {positive_class} is absent from true")
    ranking_scores = scores if positive_class == 1 else 1.0 - scores
    tp, fp, _ = _ranked_counts(is_positive, ranking_scores)
    # tp and fp never decrease down the ranking, so the best admissible point
    # is the last one within the false-positive budget; (0, 0) always is.
    return float(tp[fp <= allowed_false_positives].max() / n_positive)


def tpr0(true, scores, positive_class: int = 1) -> float:
    """TPR before the first false positive (Metcalf et al. 2019)."""
    return tpr_before_false_positives(true, scores, TPR0_ALLOWED_FALSE_POSITIVES, positive_class)


def tpr10(true, scores, positive_class: int = 1) -> float:
    """TPR with fewer than ten (at most nine) false positives (Metcalf et al. 2019)."""
    return tpr_before_false_positives(true, scores, TPR10_ALLOWED_FALSE_POSITIVES, positive_class)


# ---------------------------------------------------------------- calibration


def expected_calibration_error(true, probabilities, n_bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence (Guo et al. 2017).

    ``probabilities`` is an (N, K) matrix of class probabilities, or a 1-D array
    of positive-class probabilities for the binary case. Each sample's
    confidence is its largest class probability and its prediction that class
    (1-D input: class 1 when p >= 0.5, matching the default report threshold;
    matrix input: the first maximum). Confidences fall in ``n_bins`` equal-width
    bins (lo, hi] on [0, 1] (0 joins the first bin), and
    ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim == 1:
        positive = _as_scores("probabilities", probabilities)
        predicted = (positive >= 0.5).astype(np.int64)
        confidence = np.where(predicted == 1, positive, 1.0 - positive)
        num_classes = 2
    elif probabilities.ndim == 2:
        if probabilities.shape[0] == 0:
            raise ValueError("probabilities is empty")
        predicted = probabilities.argmax(axis=1)
        confidence = probabilities.max(axis=1)
        num_classes = probabilities.shape[1]
    else:
        raise ValueError(f"probabilities must be 1-D or (N, K), got shape {probabilities.shape}")
    if not np.all(np.isfinite(probabilities)) or probabilities.min() < 0 or probabilities.max() > 1:
        raise ValueError("probabilities must lie in [0, 1]")
    true = _as_labels("true", true, num_classes)
    _check_same_length(true=true, probabilities=confidence)

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a confidence equal to an edge in the bin that edge closes.
    bin_index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    correct = (predicted == true).astype(np.float64)
    total = 0.0
    for b in np.unique(bin_index):
        in_bin = bin_index == b
        total += in_bin.sum() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total / true.size)


# ------------------------------------------------------------------ bootstrap


class BootstrapInterval(tuple):
    """A ``(low, high)`` pair that also records ``n_skipped`` undefined resamples."""

    def __new__(cls, low: float, high: float, n_skipped: int = 0):
        interval = super().__new__(cls, (float(low), float(high)))
        interval.n_skipped = int(n_skipped)
        return interval

    def __getnewargs__(self):
        return (self[0], self[1], self.n_skipped)

    @property
    def low(self) -> float:
        return self[0]

    @property
    def high(self) -> float:
        return self[1]

    def __repr__(self) -> str:
        return f"BootstrapInterval(low={self[0]!r}, high={self[1]!r}, n_skipped={self.n_skipped})"


def _percentile_interval(statistics: np.ndarray, confidence: float, n_skipped: int) -> BootstrapInterval:
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(statistics, [tail, 1.0 - tail])
    return BootstrapInterval(low, high, n_skipped)


def _check_bootstrap_settings(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_metric(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    true,
    predicted_or_scores,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Seeded percentile-bootstrap interval of ``metric_fn(true, predicted_or_scores)``.

    Test examples are resampled with replacement (rows of a 2-D
    ``predicted_or_scores`` move with their labels). A resample on which the
    metric raises ValueError (e.g. AUROC with one class) is skipped and counted
    in ``n_skipped``; if every resample is skipped, ValueError is raised.
    """
    _check_bootstrap_settings(n_resamples, confidence)
    true = np.asarray(true)
    predicted_or_scores = np.asarray(predicted_or_scores)
    if true.ndim != 1 or true.size == 0:
        raise ValueError(f"true must be a non-empty 1-D array, got shape {true.shape}")
    _check_same_length(true=true, predicted_or_scores=predicted_or_scores)
    rng = np.random.default_rng(seed)
    statistics = []
    n_skipped = 0
    last_error = None
    for _ in range(n_resamples):
        index = rng.integers(0, true.size, size=true.size)
        try:
            statistics.append(float(metric_fn(true[index], predicted_or_scores[index])))
        except ValueError as error:
            n_skipped += 1
            last_error = error
    if not statistics:
        raise ValueError(
            f"metric was undefined on all {n_resamples} bootstrap resamples: {last_error}"
        )
    return _percentile_interval(np.asarray(statistics), confidence, n_skipped)


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapInterval:
    """Seeded percentile-bootstrap interval of the mean of ``values`` (e.g. one metric per seed)."""
    _check_bootstrap_settings(n_resamples, confidence)
    values = _as_scores("values", values)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, values.size, size=(n_resamples, values.size))
    return _percentile_interval(values[index].mean(axis=1), confidence, n_skipped=0)


# --------------------------------------------------------------------- report


def binary_classification_report(
    true,
    scores,
    threshold: float = 0.5,
    class_names: tuple[str, str] = ("FRI", "FRII"),
    n_bins: int = 10,
) -> dict:
    """JSON-ready summary of a binary classifier from class-1 probabilities.

    Predicts class 1 when score >= threshold. Holds accuracy, per-class
    precision/recall/F1/support keyed by class name, the confusion matrix
    (rows true, columns predicted, ordered as ``class_names``), AUROC,
    ``tpr0_<name>`` / ``tpr10_<name>`` for each class taken as positive, ECE and
    the ROC points. Raises ValueError if either class is absent.
    """
    true, scores = _binary_inputs(true, scores)
    if len(class_names) != 2:
        raise ValueError(f"class_names must name exactly two classes, got {class_names!r}")
    predicted = (scores >= threshold).astype(np.int64)
    per_class = per_class_precision_recall_f1(true, predicted, num_classes=2)
    fpr, tpr, _ = roc_curve(true, scores)
    report = {
        "n_samples": int(true.size),
        "threshold": float(threshold),
        "class_names": list(class_names),
        "accuracy": accuracy(true, predicted),
        "per_class": {
            name: {
                "precision": float(per_class["precision"][k]),
                "recall": float(per_class["recall"][k]),
                "f1": float(per_class["f1"][k]),
                "support": int(per_class["support"][k]),
            }
            for k, name in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(true, predicted, num_classes=2).tolist(),
        "auroc": auroc(true, scores),
    }
    for positive_class, name in enumerate(class_names):
        report[f"tpr0_{name}"] = tpr0(true, scores, positive_class)
        report[f"tpr10_{name}"] = tpr10(true, scores, positive_class)
    report["ece"] = expected_calibration_error(true, scores, n_bins=n_bins)
    report["roc_curve"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return report
