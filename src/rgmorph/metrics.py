"""Classification metrics for FRI/FRII morphology: scikit-learn, plus what it lacks.

Conventions: labels are integers 0..K-1. With two classes, class 1 (FRII) is the positive class
and ``scores`` are the predicted probability of class 1 (class 0 ranks by ``1 - scores``); with
K classes ``scores`` is an (N, K) probability matrix. A 0/0 ratio is 0.0 (``zero_division=0``).

scikit-learn gives accuracy, precision/recall/F1, the confusion matrix and the ROC curve; added
here are TPR0 and TPR10 of the strong-lens finding challenge (Metcalf et al. 2019, A&A 625, A119:
"TPR0 is the highest TPR reached, as a function of threshold, before a single false positive",
"TPR10 the TPR where less than ten false positives" are made, read literally as at most nine),
the expected calibration error, and percentile-bootstrap intervals drawn by ``scipy.stats.bootstrap``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn import metrics as skm

CLASS_NAMES = ("FRI", "FRII")
TPR0_ALLOWED_FALSE_POSITIVES = 0
TPR10_ALLOWED_FALSE_POSITIVES = 9
# A vectorised bootstrap scores this many drawn sources at a time (tens of MB), whatever the test set's size;
# the draws are the same in any batch size.
RESAMPLED_VALUES_PER_BATCH = 2**21


def check_inputs(true, scores) -> tuple[np.ndarray, np.ndarray]:
    """(int labels, float scores) with clear errors: 1-D labels in 0..K-1, finite scores of the same length."""
    true, scores = np.asarray(true), np.asarray(scores, dtype=np.float64)
    if true.ndim != 1 or true.size == 0:
        raise ValueError(f"true must be a non-empty 1-D array of class labels, got shape {true.shape}")
    if scores.ndim not in (1, 2) or len(scores) != true.size:
        raise ValueError(f"length mismatch: true has {true.size} entries but scores has shape {scores.shape}")
    num_classes = scores.shape[1] if scores.ndim == 2 else 2
    outside = ~np.isin(true, np.arange(num_classes))
    if outside.any():
        raise ValueError(f"true has labels outside 0..{num_classes - 1}: {sorted(set(true[outside].tolist()))}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contains NaN or infinite values")
    return true.astype(np.int64), scores


def metric_names(class_names: Sequence[str] = CLASS_NAMES) -> list[str]:
    """Scalar metrics in table order.

    Two classes (unchanged from the binary study): TPR0/TPR10 with the second class (FRII) positive
    come first. More classes add ``macro_f1`` and the one-vs-rest ``auroc_<name>`` of each class
    (``auroc`` is their mean), and list TPR0/TPR10 per class in class order.
    """
    if len(class_names) < 2:
        raise ValueError(f"need at least two class names, got {list(class_names)!r}")
    binary = len(class_names) == 2
    names = ["accuracy", "auroc"] + ([] if binary else ["macro_f1"])
    names += [f"{metric}_{name}" for name in class_names for metric in ("precision", "recall", "f1")]
    if not binary:
        names += [f"auroc_{name}" for name in class_names]
    for name in ((*class_names[1:], class_names[0]) if binary else class_names):
        names += [f"tpr0_{name}", f"tpr10_{name}"]
    return names + ["ece"]


def class_names_from_columns(columns, suffix: str = "") -> list[str]:
    """The class names of a runs table (``suffix`` "") or summary table ("_mean"), in column order.

    Read from the ``f1_<name><suffix>`` columns; a runs table's interval columns are not names.
    """
    columns, names = [str(column) for column in columns], []
    for column in columns:
        if not (column.startswith("f1_") and column.endswith(suffix)) or column.endswith(("_ci_low", "_ci_high")):
            continue
        name = column[3:len(column) - len(suffix)]
        if name and f"precision_{name}{suffix}" in columns:
            names.append(name)
    return names


def predicted_classes(scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """The decision: class 1 where the class-1 probability is >= ``threshold`` (two classes), else the argmax."""
    return scores.argmax(axis=1) if scores.ndim == 2 else (scores >= threshold).astype(np.int64)


def _class_ranking(scores: np.ndarray, k: int) -> np.ndarray:
    """What ranks sources as class k: column k, or for two classes the class-1 probability (class 0: 1 - it)."""
    return scores[:, k] if scores.ndim == 2 else (scores if k == 1 else 1.0 - scores)


def _ranking_metrics(true: np.ndarray, scores: np.ndarray, k: int) -> tuple[float, float, float]:
    """(TPR0, TPR10, AUROC) of class k against the rest; NaN where undefined.

    The ROC has one point per distinct score, so tied scores are admitted together (a tie holding
    a negative at the top gives TPR0 = 0); with no negatives every positive comes first (TPR 1).
    """
    positive = true == k
    if not positive.any():
        return math.nan, math.nan, math.nan
    if positive.all():
        return 1.0, 1.0, math.nan
    ranking = _class_ranking(scores, k)
    fpr, tpr, _ = skm.roc_curve(positive, ranking, drop_intermediate=False)
    false_positives = np.rint(fpr * np.count_nonzero(~positive))
    tpr0, tpr10 = (float(tpr[false_positives <= allowed].max())
                   for allowed in (TPR0_ALLOWED_FALSE_POSITIVES, TPR10_ALLOWED_FALSE_POSITIVES))
    return tpr0, tpr10, float(skm.auc(fpr, tpr))


def _confidence_bins(probabilities: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted class, its confidence, calibration bin) of each source, as ``expected_calibration_error`` bins them."""
    predicted = predicted_classes(probabilities)
    confidence = probabilities.max(axis=1) if probabilities.ndim == 2 else \
        np.where(predicted == 1, probabilities, 1.0 - probabilities)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts a confidence equal to an edge in the bin that edge closes.
    return predicted, confidence, np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)


def expected_calibration_error(true, probabilities, n_bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence (Guo et al. 2017).

    ``probabilities``: class-1 probabilities (predict class 1 when p >= 0.5) or an (N, K) matrix
    (predict the first maximum). Confidences fall in ``n_bins`` equal-width bins (lo, hi] on [0, 1]
    (0 joins the first) and ECE = sum over bins of (bin size / N) * |accuracy - mean confidence|.
    """
    true, probabilities = check_inputs(true, probabilities)
    if n_bins < 1 or probabilities.min() < 0 or probabilities.max() > 1:
        raise ValueError(f"probabilities must lie in [0, 1] and n_bins be >= 1, got n_bins={n_bins}")
    predicted, confidence, bins = _confidence_bins(probabilities, n_bins)
    correct = (predicted == true).astype(np.float64)
    total = sum((bins == b).sum() * abs(correct[bins == b].mean() - confidence[bins == b].mean())
                for b in np.unique(bins))
    return float(total / true.size)


def scalar_metrics(true, scores, class_names: Sequence[str] = CLASS_NAMES, threshold: float = 0.5,
                   n_bins: int = 10) -> dict[str, float]:
    """Every scalar of ``metric_names`` for one set of predictions; NaN where undefined (a class absent).

    Two classes: predict class 1 when score >= threshold; AUROC is that of class 1. An (N, K) matrix:
    predict the argmax; AUROC is the one-vs-rest macro mean, macro-F1 the mean of the K per-class F1.
    """
    true, scores = check_inputs(true, scores)
    if len(class_names) != (scores.shape[1] if scores.ndim == 2 else 2):
        raise ValueError(f"{len(class_names)} class names for scores of shape {scores.shape}")
    predicted = predicted_classes(scores, threshold)
    per_class = skm.precision_recall_fscore_support(true, predicted, labels=list(range(len(class_names))),
                                                    zero_division=0)
    values = {"accuracy": float(skm.accuracy_score(true, predicted))}
    areas = []
    for k, name in enumerate(class_names):
        for metric, column in zip(("precision", "recall", "f1"), per_class):
            values[f"{metric}_{name}"] = float(column[k])
        values[f"tpr0_{name}"], values[f"tpr10_{name}"], values[f"auroc_{name}"] = _ranking_metrics(true, scores, k)
        areas.append(values[f"auroc_{name}"])
    values["auroc"] = areas[1] if scores.ndim == 1 else float(np.mean(areas))
    values["macro_f1"] = float(np.mean(per_class[2]))
    values["ece"] = expected_calibration_error(true, scores, n_bins)
    return {name: values[name] for name in metric_names(class_names)}


def binary_classification_report(true, scores, threshold: float = 0.5, class_names: Sequence[str] = CLASS_NAMES,
                                 n_bins: int = 10) -> dict:
    """JSON-ready summary of a binary classifier from class-1 probabilities.

    Holds accuracy, per-class precision/recall/F1/support keyed by class name, the confusion matrix
    (rows true, columns predicted, ordered as ``class_names``), AUROC, ``tpr0_<name>`` /
    ``tpr10_<name>`` for each class taken as positive, ECE and the ROC points (one per distinct
    score, from (0, 0)). Raises ValueError if either class is absent.
    """
    true, scores = check_inputs(true, scores)
    if len(class_names) != 2 or scores.ndim != 1:
        raise ValueError(f"need two class names and 1-D scores, got {class_names!r} and shape {scores.shape}")
    if np.unique(true).size != 2:
        raise ValueError(f"only one class present in true (all {class_names[true[0]]}): the report is undefined")
    values = scalar_metrics(true, scores, class_names, threshold, n_bins)
    predicted = (scores >= threshold).astype(np.int64)
    support = np.bincount(true, minlength=2)
    fpr, tpr, _ = skm.roc_curve(true, scores, drop_intermediate=False)
    return {
        "n_samples": int(true.size), "threshold": float(threshold), "class_names": list(class_names),
        "accuracy": values["accuracy"],
        "per_class": {name: {**{metric: values[f"{metric}_{name}"] for metric in ("precision", "recall", "f1")},
                             "support": int(support[k])} for k, name in enumerate(class_names)},
        "confusion_matrix": skm.confusion_matrix(true, predicted, labels=[0, 1]).tolist(),
        "auroc": values["auroc"],
        **{key: values[key] for name in class_names for key in (f"tpr0_{name}", f"tpr10_{name}")},
        "ece": values["ece"],
        "roc_curve": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
    }


def multiclass_classification_report(true, probabilities, class_names: Sequence[str], n_bins: int = 10) -> dict:
    """JSON-ready summary of a K-class classifier (K >= 3) from an (N, K) probability matrix.

    The argmax is the prediction. Holds accuracy, macro-F1, per-class precision/recall/F1/support
    and one-vs-rest AUROC, TPR0 and TPR10 (class k ranked by column k) keyed by class name, the
    K x K confusion matrix (rows true, columns predicted, ordered as ``class_names``), AUROC (mean of
    the one-vs-rest AUROCs), ECE of the top-class confidence, and ``roc_curves``: one one-vs-rest
    ROC per class. Raises ValueError if a class is absent from ``true``.
    """
    true, probabilities = check_inputs(true, probabilities)
    if probabilities.ndim != 2 or len(class_names) != probabilities.shape[1] or len(class_names) < 3:
        raise ValueError(f"need K >= 3 class names and (N, K) probabilities, got {class_names!r} and shape "
                         f"{probabilities.shape}")
    missing = [name for k, name in enumerate(class_names) if not (true == k).any()]
    if missing:
        raise ValueError(f"classes absent from true ({', '.join(missing)}): the report is undefined")
    values = scalar_metrics(true, probabilities, class_names, n_bins=n_bins)
    support = np.bincount(true, minlength=len(class_names))
    curves = {name: skm.roc_curve(true == k, probabilities[:, k], drop_intermediate=False)[:2]
              for k, name in enumerate(class_names)}
    return {
        "n_samples": int(true.size), "decision": "argmax", "class_names": list(class_names),
        "accuracy": values["accuracy"], "macro_f1": values["macro_f1"],
        "per_class": {name: {**{metric: values[f"{metric}_{name}"] for metric in ("precision", "recall", "f1")},
                             "support": int(support[k])} for k, name in enumerate(class_names)},
        "confusion_matrix": skm.confusion_matrix(true, probabilities.argmax(axis=1),
                                                 labels=list(range(len(class_names)))).tolist(),
        "auroc": values["auroc"], **{f"auroc_{name}": values[f"auroc_{name}"] for name in class_names},
        **{key: values[key] for name in class_names for key in (f"tpr0_{name}", f"tpr10_{name}")},
        "ece": values["ece"],
        "roc_curves": {name: {"fpr": fpr.tolist(), "tpr": tpr.tolist()} for name, (fpr, tpr) in curves.items()},
    }


def classification_scores(probabilities: np.ndarray) -> np.ndarray:
    """What the metrics take from an (N, K) probability matrix: class-1 probabilities when K = 2 (the
    binary study's threshold and numbers), else the whole matrix."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return probabilities[:, 1] if probabilities.shape[1] == 2 else probabilities


def classification_report(true, probabilities, class_names: Sequence[str] = CLASS_NAMES, n_bins: int = 10) -> dict:
    """The binary report (two classes, threshold 0.5 on class 1) or the K-class one, from (N, K) probabilities."""
    scores = classification_scores(probabilities)
    if scores.ndim == 1:
        return binary_classification_report(true, scores, class_names=class_names, n_bins=n_bins)
    return multiclass_classification_report(true, scores, class_names, n_bins)


# ------------------------------------------------------------------ bootstrap


def _percentile_bootstrap(statistic, data: np.ndarray, n_resamples: int, confidence: float, seed: int) -> list[dict]:
    """Percentile interval of each output of ``statistic`` over resamples of ``data`` (scipy.stats.bootstrap).

    ``statistic(resamples, axis=-1)`` gets a batch of resamples, (batch, N), and returns (outputs, batch).
    NaN draws (statistic undefined on that resample) are left out and counted as ``n_skipped``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)  # scipy's own interval with NaN draws
        draws = stats.bootstrap((data,), statistic, n_resamples=n_resamples, vectorized=True,
                                batch=max(1, RESAMPLED_VALUES_PER_BATCH // data.size),
                                confidence_level=confidence, method="percentile",
                                rng=np.random.default_rng(seed)).bootstrap_distribution
    draws = np.atleast_2d(draws)
    tail = (1.0 - confidence) / 2
    intervals = []
    for row in draws:
        valid = row[~np.isnan(row)]
        low, high = np.quantile(valid, [tail, 1.0 - tail]) if valid.size else (math.nan, math.nan)
        intervals.append({"low": float(low), "high": float(high), "n_skipped": int(row.size - valid.size)})
    return intervals


def bootstrap_mean(values, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Seeded percentile-bootstrap (low, high) of the mean of ``values`` (e.g. one metric per seed)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 1:  # scipy needs two observations; one value resamples to itself
        return float(values[0]), float(values[0])
    interval = _percentile_bootstrap(np.mean, values, n_resamples, confidence, seed)[0]
    return interval["low"], interval["high"]


def _resample_counts(index: np.ndarray, n: int) -> np.ndarray:
    """(R, n) float counts: how often each of ``n`` sources is drawn in each row of ``index`` (R, n)."""
    rows = index.reshape(-1, index.shape[-1])
    offsets = (np.arange(len(rows)) * n)[:, None]
    return np.bincount((rows + offsets).ravel(), minlength=len(rows) * n).reshape(len(rows), n).astype(np.float64)


def _resampled_ranking(positive: np.ndarray, ranking: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(3, R) TPR0, TPR10 and AUROC of ``_ranking_metrics`` on each resample given by ``counts`` (R, N).

    The ROC is built on the distinct scores of the whole sample; a score absent from a resample
    adds a point equal to the one before it, which changes no maximum and no area.
    """
    order = np.argsort(-ranking, kind="stable")
    sorted_ranking = ranking[order]
    starts = np.flatnonzero(np.r_[True, sorted_ranking[1:] != sorted_ranking[:-1]])
    weights = counts[:, order]
    true_positives = np.cumsum(np.add.reduceat(weights * positive[order], starts, axis=1), axis=1)
    false_positives = np.cumsum(np.add.reduceat(weights * ~positive[order], starts, axis=1), axis=1)
    n_positive, n_negative = true_positives[:, -1], false_positives[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.pad(true_positives / n_positive[:, None], ((0, 0), (1, 0)))
        fpr = np.pad(false_positives / n_negative[:, None], ((0, 0), (1, 0)))
        rates = [np.take_along_axis(tpr, (false_positives <= allowed).sum(axis=1, keepdims=True), axis=1)[:, 0]
                 for allowed in (TPR0_ALLOWED_FALSE_POSITIVES, TPR10_ALLOWED_FALSE_POSITIVES)]
        area = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
    result = np.array([*rates, area])  # no negatives: TPRs 1 and area 0/0 = NaN, as _ranking_metrics
    result[:, n_positive == 0] = math.nan  # else a false positive ranked first would read as TPR0 = 0
    return result


def _resampled_ece(true: np.ndarray, scores: np.ndarray, counts: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """(R,) ``expected_calibration_error`` on each resample: sum over bins of |sum(correct - confidence)| / N."""
    predicted, confidence, bins = _confidence_bins(scores, n_bins)
    gap = (predicted == true) - confidence
    per_bin = counts @ (np.eye(n_bins)[bins] * gap[:, None])
    return np.abs(per_bin).sum(axis=1) / counts.sum(axis=1)


def resampled_scalar_metrics(true, scores, index: np.ndarray, class_names: Sequence[str] = CLASS_NAMES,
                             threshold: float = 0.5) -> np.ndarray:
    """``scalar_metrics`` of every resample ``true[i], scores[i]`` for the rows i of ``index`` (R, N), at once.

    Returns (len(metric_names), R) in ``metric_names`` order: the same numbers as calling
    ``scalar_metrics`` on each resample (to rounding), without a Python call per resample.
    """
    true, scores = check_inputs(true, scores)
    counts = _resample_counts(np.asarray(index), true.size)
    predicted = predicted_classes(scores, threshold)
    values = {"accuracy": counts @ (predicted == true) / counts.sum(axis=1)}
    areas = []
    for k, name in enumerate(class_names):
        hits, chosen, actual = (counts @ mask for mask in ((predicted == k) & (true == k), predicted == k, true == k))
        with np.errstate(invalid="ignore", divide="ignore"):
            values[f"precision_{name}"] = np.where(chosen > 0, hits / chosen, 0.0)
            values[f"recall_{name}"] = np.where(actual > 0, hits / actual, 0.0)
            values[f"f1_{name}"] = np.where(chosen + actual > 0, 2 * hits / (chosen + actual), 0.0)
        ranking = _class_ranking(scores, k)
        tpr0, tpr10, area = _resampled_ranking(true == k, ranking, counts)
        values[f"tpr0_{name}"], values[f"tpr10_{name}"], values[f"auroc_{name}"] = tpr0, tpr10, area
        areas.append(area)
    values["auroc"] = areas[1] if scores.ndim == 1 else np.mean(areas, axis=0)
    values["macro_f1"] = np.mean([values[f"f1_{name}"] for name in class_names], axis=0)
    values["ece"] = _resampled_ece(true, scores, counts)
    return np.array([values[name] for name in metric_names(class_names)])


def bootstrap_intervals(true_by_run: Sequence[np.ndarray], scores_by_run: Sequence[np.ndarray],
                        class_names: Sequence[str] = CLASS_NAMES, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict[str, dict]:
    """Percentile-bootstrap interval of the run-mean of each scalar metric, resampling test sources.

    All runs must score the same test sources in the same order (true labels equal): one draw
    of source indices is applied to every run, so the interval is that of the seed mean over
    test sets. A resample on which a metric is undefined for some run (a class absent) is
    skipped for that metric and counted. Returns {metric: {low, high, n_skipped}}.
    """
    true = np.asarray(true_by_run[0], dtype=np.int64)
    if any(not np.array_equal(other, true) for other in true_by_run[1:]):
        raise ValueError("runs score different test sources: align them by name before a joint bootstrap")
    scores_by_run = [np.asarray(scores, dtype=np.float64) for scores in scores_by_run]
    names = metric_names(class_names)

    def run_mean(index: np.ndarray, axis: int = -1) -> np.ndarray:
        # scipy passes every resample at once: index is (R, N); the result is (metrics, R)
        per_run = [resampled_scalar_metrics(true, scores, index, class_names) for scores in scores_by_run]
        return np.mean(per_run, axis=0).reshape(len(names), *np.shape(index)[:-1])

    intervals = _percentile_bootstrap(run_mean, np.arange(true.size), n_resamples, confidence, seed)
    return dict(zip(names, intervals))
