"""Hand-computed checks of rgmorph.metrics; the arithmetic is in the comments."""

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from rgmorph import metrics


def _tprs(true, scores, positive_class=1):
    """(TPR0, TPR10) with ``positive_class`` positive, as the evaluation reports them."""
    values = metrics.scalar_metrics(true, scores)
    name = metrics.CLASS_NAMES[positive_class]
    return values[f"tpr0_{name}"], values[f"tpr10_{name}"]


# ----------------------------------------------------- thresholded metrics

# 6 samples, scores thresholded at 0.5 -> predicted [1, 1, 1, 0, 1, 1]
SIX_TRUE = np.array([1, 1, 1, 1, 0, 0])
SIX_SCORES = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.55])


def test_precision_recall_f1_six_samples():
    values = metrics.scalar_metrics(SIX_TRUE, SIX_SCORES)
    # FRI: precision 0/(0+1) = 0, recall 0/2 = 0, F1 = 0/0 -> 0.0 by convention
    # FRII: precision 3/(2+3) = 0.6, recall 3/4 = 0.75, F1 = 2*0.6*0.75/(0.6+0.75) = 2/3
    assert [values[f"{m}_FRI"] for m in ("precision", "recall", "f1")] == [0.0, 0.0, 0.0]
    assert [values[f"{m}_FRII"] for m in ("precision", "recall", "f1")] == pytest.approx([0.6, 0.75, 2 / 3])
    assert values["accuracy"] == 0.5  # 3 of 6
    assert list(values) == metrics.metric_names()


def test_metric_names_order():
    assert metrics.metric_names(("A", "B")) == [
        "accuracy", "auroc", "precision_A", "recall_A", "f1_A", "precision_B", "recall_B", "f1_B",
        "tpr0_B", "tpr10_B", "tpr0_A", "tpr10_A", "ece"]


# ------------------------------------------------------------------- AUROC

# positives score 0.9, 0.6, 0.4; negatives score 0.6, 0.3
TIED_TRUE = np.array([1, 1, 1, 0, 0])
TIED_SCORES = np.array([0.9, 0.6, 0.4, 0.6, 0.3])


def test_auroc_and_roc_curve_by_hand_with_a_tie():
    # Mann-Whitney over 3*2 pairs: (0.9,0.6)=1 (0.9,0.3)=1 (0.6,0.6)=1/2 (0.6,0.3)=1 (0.4,0.6)=0 (0.4,0.3)=1
    #   -> 4.5 / 6 = 0.75
    report = metrics.binary_classification_report(TIED_TRUE, TIED_SCORES)
    assert report["auroc"] == pytest.approx(0.75, abs=1e-12)
    # one point per distinct score; the 0.6 tie (one positive, one negative) moves diagonally
    assert report["roc_curve"]["fpr"] == pytest.approx([0, 0, 0.5, 0.5, 1])
    assert report["roc_curve"]["tpr"] == pytest.approx([0, 1 / 3, 2 / 3, 1, 1])


def test_auroc_perfect_reversed_and_all_tied():
    true = [0, 0, 1, 1]
    assert metrics.scalar_metrics(true, [0.1, 0.2, 0.8, 0.9])["auroc"] == 1.0
    assert metrics.scalar_metrics(true, [0.9, 0.8, 0.2, 0.1])["auroc"] == 0.0
    assert metrics.scalar_metrics(true, [0.5, 0.5, 0.5, 0.5])["auroc"] == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_on_random_tied_data(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, size=300)
    scores = np.round(np.clip(rng.normal(0.4 + 0.2 * true, 0.2), 0, 1) * 20) / 20  # many ties
    assert metrics.scalar_metrics(true, scores)["auroc"] == pytest.approx(skm.roc_auc_score(true, scores), abs=1e-12)


# ---------------------------------------------------------------- TPR0 / TPR10


def _ranked(labels_best_first, seed=0):
    """Labels in descending-score order -> shuffled (true, distinct scores)."""
    labels = np.array(labels_best_first)
    scores = np.linspace(0.99, 0.01, labels.size)
    order = np.random.default_rng(seed).permutation(labels.size)
    return labels[order], scores[order]


P, N = 1, 0


def test_tpr0_and_tpr10_by_hand():
    # best-first: P P N P N N P N N N N N N N P N N (5 positives, 12 negatives);
    # negatives before each positive: 0, 0, 1, 3, 10
    true, scores = _ranked([P, P, N, P, N, N, P, N, N, N, N, N, N, N, P, N, N])
    # TPR0: P1, P2 precede the first negative -> 2/5; TPR10 (at most 9 FPs): P5 needs 10 -> 4/5
    assert _tprs(true, scores) == (2 / 5, 4 / 5)
    assert metrics.TPR0_ALLOWED_FALSE_POSITIVES == 0 and metrics.TPR10_ALLOWED_FALSE_POSITIVES == 9


def test_tpr10_boundary_nine_false_positives_is_included():
    # P, 9 N, P, N: the second positive follows exactly 9 false positives
    assert _tprs(*_ranked([P] + [N] * 9 + [P, N])) == (0.5, 1.0)


def test_tie_that_would_bring_the_tenth_false_positive_is_rejected_whole():
    # P, 9 N, then a positive tied with a negative: admitting the tie means 10 FPs
    true = np.array([P] + [N] * 9 + [P, N])
    scores = np.concatenate([[0.99], np.linspace(0.9, 0.5, 9), [0.3, 0.3]])
    assert _tprs(true, scores) == (0.5, 0.5)


def test_tpr0_zero_when_top_score_is_negative_or_a_mixed_tie():
    assert _tprs([0, 1, 1], [0.9, 0.8, 0.7]) == (0.0, 1.0)
    # the top group {positive 0.9, negative 0.9} cannot be split by a threshold
    assert _tprs([1, 0, 1], [0.9, 0.9, 0.5]) == (0.0, 1.0)


def test_fri_positive_direction_ranks_by_one_minus_score():
    # FRI positive: lowest FRII probability first: 0.1 FRI, 0.2 FRII (false positive), 0.3 FRI, 0.8 FRI
    true, scores = [0, 1, 0, 0], [0.1, 0.2, 0.3, 0.8]
    assert _tprs(true, scores, positive_class=0) == (pytest.approx(1 / 3), 1.0)
    # same as flipping labels and scores by hand
    assert _tprs(true, scores, 0) == _tprs(1 - np.array(true), 1 - np.array(scores), 1)


def test_undefined_metrics_are_nan_and_no_negatives_gives_tpr_one():
    values = metrics.scalar_metrics([1, 1, 1], [0.2, 0.5, 0.9])
    assert values["tpr0_FRII"] == values["tpr10_FRII"] == 1.0
    assert math.isnan(values["auroc"]) and math.isnan(values["tpr0_FRI"]) and math.isnan(values["tpr10_FRI"])


def test_three_classes_one_vs_rest():
    # argmax predictions [0, 1, 2, 2]; class 2 ranks by its own column: 0.7 (2), 0.6 (2), 0.2, 0.1
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6]])
    values = metrics.scalar_metrics([0, 1, 2, 1], probabilities, ("A", "B", "C"))
    assert values["accuracy"] == 0.75 and values["recall_B"] == 0.5 and values["precision_C"] == 0.5
    # column C best-first: 0.7 (C), 0.6 (B: a false positive) -> TPR0 1/1; column A: 0.8 (A) first -> 1/1
    assert values["tpr0_C"] == 1.0 and values["tpr0_A"] == 1.0
    assert values["auroc"] == pytest.approx(skm.roc_auc_score([0, 1, 2, 1], probabilities, multi_class="ovr"))


# ------------------------------------------------------------------------- ECE

# 4 samples with p(FRII) = 0.85 -> predict FRII, confidence 0.85, bin (0.8, 0.9]
# 4 samples with p(FRII) = 0.35 -> predict FRI,  confidence 0.65, bin (0.6, 0.7]
ECE_PROBS = np.array([0.85] * 4 + [0.35] * 4)
ECE_TRUE = np.array([1, 1, 1, 0] + [0, 0, 0, 0])


def test_ece_by_hand_two_bins():
    # bin (0.8,0.9]: accuracy 3/4, confidence 0.85, gap 0.10; bin (0.6,0.7]: accuracy 1, confidence 0.65,
    # gap 0.35 -> ECE = 4/8 * 0.10 + 4/8 * 0.35 = 0.225
    assert metrics.expected_calibration_error(ECE_TRUE, ECE_PROBS) == pytest.approx(0.225)
    # one bin pools them: accuracy 7/8 = 0.875, confidence 0.75 -> 0.125
    assert metrics.expected_calibration_error(ECE_TRUE, ECE_PROBS, n_bins=1) == pytest.approx(0.125)
    matrix = np.column_stack([1 - ECE_PROBS, ECE_PROBS])
    assert metrics.expected_calibration_error(ECE_TRUE, matrix) == pytest.approx(0.225)


def test_ece_bins_are_closed_on_the_right():
    # n_bins=4: p=0.75 (true 1, right) -> bin (0.5, 0.75], gap 0.25; p=0.80 (true 0, wrong) -> (0.75, 1], gap 0.80
    # ECE = (0.25 + 0.80) / 2 = 0.525   (a [lo, hi) convention would pool them: 0.275)
    assert metrics.expected_calibration_error([1, 0], [0.75, 0.8], n_bins=4) == pytest.approx(0.525)


# ------------------------------------------------------------------ input errors


@pytest.mark.parametrize("true, scores, message", [
    ([0, 1, 1], [0.2, 0.4], "true has 3 entries but scores has shape"),
    ([0, 2], [0.2, 0.4], r"true has labels outside 0..1: \[2\]"),
    ([0, 0.5], [0.2, 0.4], r"outside 0..1: \[0.5\]"),
    ([0, 1], [0.2, np.nan], "scores contains NaN"),
    ([], [], "non-empty 1-D"),
])
def test_bad_inputs_are_named(true, scores, message):
    with pytest.raises(ValueError, match=message):
        metrics.scalar_metrics(true, scores)


def test_probabilities_outside_unit_interval_and_single_class_report_are_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.expected_calibration_error([0, 1], [0.2, 1.5])
    with pytest.raises(ValueError, match=r"only one class present in true \(all FRII\)"):
        metrics.binary_classification_report([1, 1, 1], [0.2, 0.5, 0.9])


# ------------------------------------------------------------------- bootstrap


def test_bootstrap_mean_over_seeds_is_seeded_and_brackets_the_mean():
    per_seed_auroc = [0.80, 0.82, 0.84, 0.86]
    first = metrics.bootstrap_mean(per_seed_auroc, n_resamples=500, seed=0)
    assert first == metrics.bootstrap_mean(per_seed_auroc, n_resamples=500, seed=0)
    # a resampled mean can never leave [min, max]; the mean 0.83 sits inside
    assert 0.80 <= first[0] <= 0.83 <= first[1] <= 0.86
    assert metrics.bootstrap_mean([0.9], n_resamples=10) == (0.9, 0.9)


def test_bootstrap_percentiles_of_a_known_distribution():
    # ten 0s and ten 1s: a resampled mean is Binomial(20, 1/2) / 20. P(X <= 5) = 0.021 and
    # P(X <= 6) = 0.058, so the 2.5% quantile is 6/20 = 0.3 and by symmetry the 97.5% one 14/20 = 0.7.
    assert metrics.bootstrap_mean([0.0] * 10 + [1.0] * 10, n_resamples=20000) == pytest.approx((0.3, 0.7))


@pytest.mark.parametrize("class_names", [metrics.CLASS_NAMES, ("FRI", "FRII", "Bent")])
def test_resamples_scored_at_once_match_scalar_metrics_on_each(class_names):
    # few distinct scores (ties across classes) and small samples (a class often missing)
    rng = np.random.default_rng(5)
    n, k = 9, len(class_names)
    true = rng.integers(0, k, n)
    raw = rng.integers(1, 5, (n, k)).astype(float)
    scores = raw[:, 1] / 5 if k == 2 else raw / raw.sum(axis=1, keepdims=True)
    index = rng.integers(0, n, (400, n))
    at_once = metrics.resampled_scalar_metrics(true, scores, index, class_names)
    one_by_one = np.array([list(metrics.scalar_metrics(true[i], scores[i], class_names).values()) for i in index]).T
    np.testing.assert_allclose(at_once, one_by_one, rtol=1e-12, atol=1e-15)
    auroc = one_by_one[metrics.metric_names(class_names).index("auroc")]
    assert 0 < np.isnan(auroc).sum() < len(index)  # resamples missing a class were exercised


def test_bootstrap_intervals_do_not_depend_on_the_batch_size(monkeypatch):
    whole = metrics.bootstrap_intervals([FROZEN_TRUE], [FROZEN_SCORES], n_resamples=50, seed=2)
    monkeypatch.setattr(metrics, "RESAMPLED_VALUES_PER_BATCH", 7 * FROZEN_TRUE.size)  # 8 batches, the last short
    assert metrics.bootstrap_intervals([FROZEN_TRUE], [FROZEN_SCORES], n_resamples=50, seed=2) == whole


def test_bootstrap_skips_and_counts_single_class_resamples():
    # one FRII in 6: a resample misses it with probability (5/6)^6 ~ 0.33
    true, scores = np.array([1, 0, 0, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3, 0.4, 0.5])
    intervals = metrics.bootstrap_intervals([true], [scores], n_resamples=300, seed=1)
    assert 60 < intervals["auroc"]["n_skipped"] < 140
    assert intervals["tpr0_FRII"]["n_skipped"] == intervals["auroc"]["n_skipped"]
    assert intervals["accuracy"]["n_skipped"] == 0 and intervals["tpr0_FRI"]["n_skipped"] == 0
    # the lone FRII always outranks every FRI -> AUROC 1 whenever defined
    assert (intervals["auroc"]["low"], intervals["auroc"]["high"]) == (1.0, 1.0)
    never = metrics.bootstrap_intervals([np.zeros(3, int)], [np.array([0.1, 0.2, 0.3])], n_resamples=20)
    assert never["auroc"]["n_skipped"] == 20 and math.isnan(never["auroc"]["low"])


# ---------------------------------------------------------------------- report

# index:           0     1     2     3     4     5
REPORT_TRUE = [0, 0, 1, 1, 1, 0]
REPORT_SCORES = [0.15, 0.65, 0.75, 0.45, 0.95, 0.25]


def test_binary_classification_report_by_hand():
    report = metrics.binary_classification_report(REPORT_TRUE, REPORT_SCORES)
    json.dumps(report, allow_nan=False)  # plain JSON, no numpy types, no inf/nan
    # predicted (>= 0.5): [0, 1, 1, 0, 1, 0]
    # true FRI  (0,1,5) -> predicted 0,1,0 -> [2, 1]; true FRII (2,3,4) -> 1,0,1 -> [1, 2]
    assert report["confusion_matrix"] == [[2, 1], [1, 2]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    for name in ("FRI", "FRII"):  # each class: 2 right out of 3 predicted and out of 3 true
        assert report["per_class"][name] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3,
                                                           "support": 3})
    # positives 0.75, 0.45, 0.95 vs negatives 0.15, 0.65, 0.25: 0.75 beats 3, 0.45 beats 2, 0.95 beats 3 -> 8/9
    assert report["auroc"] == pytest.approx(8 / 9)
    # FRII best-first: 0.95 P, 0.75 P, 0.65 N -> TPR0 2/3; only 3 FPs exist -> TPR10 1
    # FRI best-first (lowest score): 0.15 P, 0.25 P, 0.45 N -> 2/3; TPR10 1
    assert [report[k] for k in ("tpr0_FRII", "tpr10_FRII", "tpr0_FRI", "tpr10_FRI")] == pytest.approx(
        [2 / 3, 1, 2 / 3, 1])
    # confidences / correct: .85 ok, .65 wrong, .75 ok, .55 wrong, .95 ok, .75 ok
    # ECE = (0.55 + 0.65 + 2*0.25 + 0.15 + 0.05) / 6 = 1.9/6
    assert report["ece"] == pytest.approx(1.9 / 6)
    # ROC best-first: P P N P N N
    assert report["roc_curve"]["fpr"] == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert report["roc_curve"]["tpr"] == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert report["class_names"] == ["FRI", "FRII"] and report["n_samples"] == 6 and report["threshold"] == 0.5


def test_report_keys_follow_class_names():
    report = metrics.binary_classification_report(REPORT_TRUE, REPORT_SCORES, class_names=("A", "B"))
    assert [key for key in report if key.startswith("tpr")] == ["tpr0_A", "tpr10_A", "tpr0_B", "tpr10_B"]
    assert set(report["per_class"]) == {"A", "B"}


# --------------------------------------- binary numbers unchanged by the K-class code

# Fixed binary predictions and what the binary path gave for them before K-class support was added
# (full precision, recorded then); the K-class code must not change one bit of them.
FROZEN_TRUE = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 0])
FROZEN_SCORES = np.array([0.59, 0.69, 0.73, 0.75, 1.0, 0.89, 0.79, 0.59, 0.17, 0.14, 0.39, 0.47, 0.47, 0.33, 0.31,
                           0.95, 0.4, 0.73, 0.32, 0.19, 0.46, 0.16, 0.43, 0.16])
FROZEN_SCORES_2 = np.array([0.65, 0.45, 0.91, 0.53, 0.6, 0.93, 0.73, 0.52, 0.4, 0.46, 0.1, 0.75, 0.73, 0.53, 0.25,
                             0.78, 0.08, 0.66, 0.23, 0.13, 0.9, 0.26, 0.59, 0.37])
FROZEN_REPORT = {'n_samples': 24,
                 'threshold': 0.5,
                 'class_names': ['FRI', 'FRII'],
                 'accuracy': 0.8333333333333334,
                 'per_class': {'FRI': {'precision': 0.7857142857142857,
                                       'recall': 0.9166666666666666,
                                       'f1': 0.8461538461538461,
                                       'support': 12},
                               'FRII': {'precision': 0.9, 'recall': 0.75, 'f1': 0.8181818181818182, 'support': 12}},
                 'confusion_matrix': [[11, 1], [3, 9]],
                 'auroc': 0.9756944444444445,
                 'tpr0_FRI': 0.9166666666666666,
                 'tpr10_FRI': 1.0,
                 'tpr0_FRII': 0.6666666666666666,
                 'tpr10_FRII': 1.0,
                 'ece': 0.19125}
# bootstrap_intervals([FROZEN_TRUE] * 2, [FROZEN_SCORES, FROZEN_SCORES_2], n_resamples=30, seed=3): (low, high)
FROZEN_INTERVALS = {
    'accuracy': (0.7234375, 0.9166666666666667),
    'auroc': (0.912261396011396, 0.9949652777777778),
    'precision_FRI': (0.6597916666666667, 0.9388822115384615),
    'recall_FRI': (0.6688873626373627, 0.9395833333333332),
    'f1_FRI': (0.7090050004237648, 0.9112360248447205),
    'precision_FRII': (0.6696789148351648, 0.9546874999999999),
    'recall_FRII': (0.7272727272727273, 0.928125),
    'f1_FRII': (0.7132747252747254, 0.9169613526570047),
    'tpr0_FRII': (0.635530303030303, 0.9758333333333333),
    'tpr10_FRII': (1.0, 1.0),
    'tpr0_FRI': (0.5988324175824177, 0.9697916666666666),
    'tpr10_FRI': (1.0, 1.0),
    'ece': (0.12776041666666665, 0.2532864583333333),
}


def test_binary_report_and_intervals_are_unchanged_by_the_k_class_code():
    report = metrics.binary_classification_report(FROZEN_TRUE, FROZEN_SCORES)
    assert {key: value for key, value in report.items() if key != "roc_curve"} == FROZEN_REPORT
    assert list(report) == [*FROZEN_REPORT, "roc_curve"]
    probabilities = np.column_stack([1 - FROZEN_SCORES, FROZEN_SCORES])  # what evaluation passes: (N, 2)
    assert metrics.classification_report(FROZEN_TRUE, probabilities) == report
    intervals = metrics.bootstrap_intervals([FROZEN_TRUE] * 2, [FROZEN_SCORES, FROZEN_SCORES_2], n_resamples=30,
                                            seed=3)
    assert list(intervals) == list(FROZEN_INTERVALS) == metrics.metric_names()
    # resamples are scored all at once since, so ECE sums in another order: equal to rounding
    assert {name: (value["low"], value["high"]) for name, value in intervals.items()} == {
        name: pytest.approx(value, rel=1e-14, abs=0) for name, value in FROZEN_INTERVALS.items()}
    assert all(value["n_skipped"] == 0 for value in intervals.values())


# ------------------------------------------------------------------ K classes

THREE = ("FRI", "FRII", "Bent")


def _three_class_predictions(n=60, seed=0):
    rng = np.random.default_rng(seed)
    true = np.arange(n) % 3
    logits = rng.normal(0, 1, (n, 3)) + 1.5 * np.eye(3)[true]
    return true, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_metric_names_for_three_classes():
    assert metrics.metric_names(("A", "B", "C")) == [
        "accuracy", "auroc", "macro_f1", "precision_A", "recall_A", "f1_A", "precision_B", "recall_B", "f1_B",
        "precision_C", "recall_C", "f1_C", "auroc_A", "auroc_B", "auroc_C",
        "tpr0_A", "tpr10_A", "tpr0_B", "tpr10_B", "tpr0_C", "tpr10_C", "ece"]
    with pytest.raises(ValueError, match="two class names"):
        metrics.metric_names(("A",))


def test_three_class_report_agrees_with_sklearn():
    true, probabilities = _three_class_predictions()
    report = metrics.classification_report(true, probabilities, THREE)
    json.dumps(report, allow_nan=False)
    predicted = probabilities.argmax(axis=1)
    assert report["confusion_matrix"] == skm.confusion_matrix(true, predicted).tolist()
    assert np.array(report["confusion_matrix"]).shape == (3, 3)
    assert report["macro_f1"] == pytest.approx(skm.f1_score(true, predicted, average="macro"), abs=1e-15)
    assert report["auroc"] == pytest.approx(skm.roc_auc_score(true, probabilities, multi_class="ovr"), abs=1e-15)
    for k, name in enumerate(THREE):
        assert report[f"auroc_{name}"] == pytest.approx(skm.roc_auc_score(true == k, probabilities[:, k]))
        assert report["per_class"][name]["f1"] == pytest.approx(skm.f1_score(true == k, predicted == k))
        assert report["per_class"][name]["support"] == 20
        assert set(report["roc_curves"][name]) == {"fpr", "tpr"}
        assert 0 <= report[f"tpr0_{name}"] <= report[f"tpr10_{name}"] <= 1
    assert report["accuracy"] == pytest.approx(np.mean(predicted == true))
    assert report["class_names"] == list(THREE) and "roc_curve" not in report


def test_three_class_tpr0_ranks_by_the_class_column():
    # column Bent best-first: 0.7 (Bent), 0.6 (Bent), 0.5 (FRI: first false positive), 0.1 (FRII)
    probabilities = np.array([[0.2, 0.1, 0.7], [0.3, 0.1, 0.6], [0.4, 0.1, 0.5], [0.1, 0.8, 0.1], [0.9, 0.0, 0.1],
                              [0.5, 0.4, 0.1]])
    report = metrics.classification_report([2, 2, 0, 1, 0, 2], probabilities, THREE)
    # Bent: 0.7, 0.6 found, then the FRI at 0.5, then the third Bent (0.1, tied with 3 negatives) -> 2/3
    assert report["tpr0_Bent"] == pytest.approx(2 / 3) and report["tpr10_Bent"] == 1.0
    # predicted [2, 2, 2, 1, 0, 0]: Bent precision 2/3, recall 2/3
    assert report["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [1, 0, 2]]


def test_three_class_report_needs_every_class_and_matching_names():
    true, probabilities = _three_class_predictions()
    with pytest.raises(ValueError, match="absent from true.*Bent"):
        metrics.classification_report(np.where(true == 2, 0, true), probabilities, THREE)
    with pytest.raises(ValueError, match="class names"):
        metrics.scalar_metrics(true, probabilities, ("A", "B"))


def test_three_class_bootstrap_intervals_cover_every_metric():
    true, probabilities = _three_class_predictions()
    intervals = metrics.bootstrap_intervals([true], [probabilities], THREE, n_resamples=20)
    assert list(intervals) == metrics.metric_names(THREE)
    assert intervals["macro_f1"]["low"] <= intervals["macro_f1"]["high"]


def test_class_names_from_columns():
    columns = ["accuracy", "macro_f1", "precision_FRI", "f1_FRI", "precision_Bent_x", "f1_Bent_x", "f1_FRI_ci_low",
               "precision_FRI_ci_low"]
    assert metrics.class_names_from_columns(columns) == ["FRI", "Bent_x"]
    assert metrics.class_names_from_columns(["f1_A_mean", "precision_A_mean", "f1_A_std"], "_mean") == ["A"]
