"""Hand-computed checks of rgmorph.metrics; the arithmetic is in the comments."""

import json
import pickle

import numpy as np
import pytest
from sklearn import metrics as skm

from rgmorph import metrics

# ----------------------------------------------------- confusion / P / R / F1

# 6 samples:       index  0  1  2  3  4  5
SIX_TRUE = np.array([1, 1, 1, 1, 0, 0])
SIX_PRED = np.array([1, 1, 1, 0, 1, 1])
# true 0 (idx 4,5): predicted 1, 1          -> row [0, 2]
# true 1 (idx 0-3): predicted 1, 1, 1, 0    -> row [1, 3]


def test_confusion_matrix_six_samples():
    counts = metrics.confusion_matrix(SIX_TRUE, SIX_PRED, num_classes=2)
    assert counts.tolist() == [[0, 2], [1, 3]]
    assert counts.dtype.kind == "i"


def test_precision_recall_f1_six_samples():
    scores = metrics.per_class_precision_recall_f1(SIX_TRUE, SIX_PRED, num_classes=2)
    # class 0: precision 0/(0+1) = 0, recall 0/2 = 0, F1 = 0/0 -> 0.0 by convention
    # class 1: precision 3/(2+3) = 0.6, recall 3/4 = 0.75,
    #          F1 = 2*0.6*0.75/(0.6+0.75) = 0.9/1.35 = 2/3
    np.testing.assert_allclose(scores["precision"], [0.0, 0.6])
    np.testing.assert_allclose(scores["recall"], [0.0, 0.75])
    np.testing.assert_allclose(scores["f1"], [0.0, 2 / 3])
    assert scores["support"].tolist() == [2, 4]
    # accuracy: diagonal 0 + 3 = 3 of 6
    assert metrics.accuracy(SIX_TRUE, SIX_PRED) == 0.5


def test_precision_recall_agree_with_sklearn_on_six_samples():
    ours = metrics.per_class_precision_recall_f1(SIX_TRUE, SIX_PRED, num_classes=2)
    p, r, f, s = skm.precision_recall_fscore_support(SIX_TRUE, SIX_PRED, zero_division=0)
    np.testing.assert_allclose(ours["precision"], p)
    np.testing.assert_allclose(ours["recall"], r)
    np.testing.assert_allclose(ours["f1"], f)
    np.testing.assert_array_equal(ours["support"], s)


def test_class_never_predicted_nor_present_gives_zero_not_nan():
    # 3 classes, class 2 never appears in true nor predicted:
    # true 0 -> pred 0, 1 ; true 1 -> pred 1  => [[1,1,0],[0,1,0],[0,0,0]]
    true, predicted = [0, 0, 1], [0, 1, 1]
    assert metrics.confusion_matrix(true, predicted, 3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]
    scores = metrics.per_class_precision_recall_f1(true, predicted, 3)
    # class 0: P 1/1, R 1/2, F1 2*1*0.5/1.5 = 2/3; class 1: P 1/2, R 1/1, F1 2/3; class 2: 0/0 -> 0
    np.testing.assert_allclose(scores["precision"], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(scores["recall"], [0.5, 1.0, 0.0])
    np.testing.assert_allclose(scores["f1"], [2 / 3, 2 / 3, 0.0])
    assert scores["support"].tolist() == [2, 1, 0]


def test_labels_outside_range_are_rejected():
    with pytest.raises(ValueError, match=r"predicted has labels outside 0..1: \[2\]"):
        metrics.confusion_matrix([0, 1], [0, 2], num_classes=2)


# ------------------------------------------------------------------- ROC / AUC

# positives score 0.9, 0.6, 0.4; negatives score 0.6, 0.3
TIED_TRUE = np.array([1, 1, 1, 0, 0])
TIED_SCORES = np.array([0.9, 0.6, 0.4, 0.6, 0.3])


def test_auroc_by_hand_with_a_tie():
    # Mann-Whitney over 3*2 = 6 pairs (positive, negative):
    #   (0.9,0.6)=1 (0.9,0.3)=1 (0.6,0.6)=1/2 (0.6,0.3)=1 (0.4,0.6)=0 (0.4,0.3)=1
    #   -> 4.5 / 6 = 0.75
    assert metrics.auroc(TIED_TRUE, TIED_SCORES) == pytest.approx(0.75, abs=1e-12)


def test_roc_curve_by_hand_with_a_tie():
    # threshold inf : tp 0 fp 0 -> (0, 0)
    # threshold 0.9 : tp 1 fp 0 -> (0, 1/3)
    # threshold 0.6 : tie of one positive and one negative moves diagonally -> (1/2, 2/3)
    # threshold 0.4 : tp 3 fp 1 -> (1/2, 1)
    # threshold 0.3 : tp 3 fp 2 -> (1, 1)
    # trapezoids: 0.5*(1/3+2/3)/2 + 0 + 0.5*(1+1)/2 = 0.25 + 0.5 = 0.75
    fpr, tpr, thresholds = metrics.roc_curve(TIED_TRUE, TIED_SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.6, 0.4, 0.3])


def test_auroc_perfect_and_reversed():
    true = [0, 0, 1, 1]
    assert metrics.auroc(true, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.auroc(true, [0.9, 0.8, 0.2, 0.1]) == 0.0
    # all scores tied: one diagonal step, every pair counts 1/2
    assert metrics.auroc(true, [0.5, 0.5, 0.5, 0.5]) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_and_auroc_match_sklearn_on_random_tied_data(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, size=300)
    # rounding to 0.05 forces many ties inside and across classes
    scores = np.round(np.clip(rng.normal(0.4 + 0.2 * true, 0.2), 0, 1) * 20) / 20
    fpr, tpr, thresholds = metrics.roc_curve(true, scores)
    sk_fpr, sk_tpr, sk_thresholds = skm.roc_curve(true, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:])
    assert metrics.auroc(true, scores) == pytest.approx(skm.roc_auc_score(true, scores), abs=1e-12)


def test_single_class_auroc_error_names_the_problem():
    with pytest.raises(ValueError, match=r"only one class present in true \(all positive \(1\)\)"):
        metrics.auroc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="only one class present"):
        metrics.roc_curve([0, 0], [0.2, 0.5])


def test_mismatched_lengths_error_names_both_arrays():
    with pytest.raises(ValueError, match="true has 3 entries but scores has 2 entries"):
        metrics.auroc([0, 1, 1], [0.2, 0.4])
    with pytest.raises(ValueError, match="true has 2 entries but predicted has 3 entries"):
        metrics.accuracy([0, 1], [0, 1, 1])


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="scores contains NaN"):
        metrics.auroc([0, 1], [0.2, np.nan])


# ---------------------------------------------------------------- TPR0 / TPR10


def _ranked(labels_best_first, seed=0):
    """Labels in descending-score order -> shuffled (true, distinct scores)."""
    labels = np.array(labels_best_first)
    scores = np.linspace(0.99, 0.01, labels.size)
    order = np.random.default_rng(seed).permutation(labels.size)
    return labels[order], scores[order]


P, N = 1, 0
# best-first: P P N P N N P N N N N N N N P N N   (5 positives, 12 negatives)
#   negatives before each positive: P1 0, P2 0, P3 1, P4 3, P5 10
HAND_TRUE, HAND_SCORES = _ranked([P, P, N, P, N, N, P, N, N, N, N, N, N, N, P, N, N])


def test_tpr0_and_tpr10_by_hand():
    # TPR0: only P1, P2 precede the first negative -> 2/5
    assert metrics.tpr0(HAND_TRUE, HAND_SCORES) == 2 / 5
    # TPR10 (at most 9 FPs): P4 comes after 3 FPs, P5 after 10 -> 4/5
    assert metrics.tpr10(HAND_TRUE, HAND_SCORES) == 4 / 5
    # budgets in between: 1 or 2 FPs admit P3 -> 3/5
    assert metrics.tpr_before_false_positives(HAND_TRUE, HAND_SCORES, 2) == 3 / 5


def test_tpr10_boundary_ten_false_positives_is_excluded():
    # P5 needs exactly 10 false positives: outside "fewer than ten", inside a budget of 10
    assert metrics.tpr_before_false_positives(HAND_TRUE, HAND_SCORES, 9) == 4 / 5
    assert metrics.tpr_before_false_positives(HAND_TRUE, HAND_SCORES, 10) == 1.0
    assert metrics.TPR10_ALLOWED_FALSE_POSITIVES == 9


def test_tpr10_boundary_nine_false_positives_is_included():
    # P, 9 N, P, N: the second positive follows exactly 9 false positives
    true, scores = _ranked([P] + [N] * 9 + [P, N])
    assert metrics.tpr10(true, scores) == 1.0
    assert metrics.tpr_before_false_positives(true, scores, 8) == 0.5
    assert metrics.tpr0(true, scores) == 0.5


def test_tie_that_would_bring_the_tenth_false_positive_is_rejected_whole():
    # P, 9 N, then a positive tied with a negative: admitting the tie means 10 FPs
    true = np.array([P] + [N] * 9 + [P, N])
    scores = np.concatenate([[0.99], np.linspace(0.9, 0.5, 9), [0.3, 0.3]])
    assert metrics.tpr10(true, scores) == 0.5


def test_tpr_with_no_negatives_is_one():
    assert metrics.tpr0([1, 1, 1], [0.2, 0.5, 0.9]) == 1.0
    assert metrics.tpr10([1, 1, 1], [0.2, 0.5, 0.9]) == 1.0


def test_tpr0_is_zero_when_top_score_is_negative():
    assert metrics.tpr0([0, 1, 1], [0.9, 0.8, 0.7]) == 0.0
    # one FP allowed: everything else follows -> 2/2
    assert metrics.tpr_before_false_positives([0, 1, 1], [0.9, 0.8, 0.7], 1) == 1.0


def test_tpr0_is_zero_when_top_score_ties_a_positive_and_a_negative():
    # the top group {positive 0.9, negative 0.9} cannot be split by a threshold
    assert metrics.tpr0([1, 0, 1], [0.9, 0.9, 0.5]) == 0.0
    assert metrics.tpr10([1, 0, 1], [0.9, 0.9, 0.5]) == 1.0


def test_fri_positive_direction_ranks_by_one_minus_score():
    # FRI (class 0) positive: rank by 1 - score, i.e. lowest FRII probability first.
    # scores ascending: 0.1 FRI, 0.2 FRII(=negative here), 0.3 FRI, 0.8 FRI
    true = [0, 1, 0, 0]
    scores = [0.1, 0.2, 0.3, 0.8]
    # TPR0: only the 0.1 FRI precedes the first FRII -> 1/3
    assert metrics.tpr0(true, scores, positive_class=0) == pytest.approx(1 / 3)
    assert metrics.tpr10(true, scores, positive_class=0) == 1.0
    # same as flipping labels and scores by hand
    flipped = metrics.tpr0(1 - np.array(true), 1 - np.array(scores))
    assert metrics.tpr0(true, scores, positive_class=0) == flipped


def test_tpr_without_positives_is_an_error():
    with pytest.raises(ValueError, match="positive class 1 is absent"):
        metrics.tpr0([0, 0], [0.1, 0.2])


# ------------------------------------------------------------------------- ECE

# 4 samples with p(FRII) = 0.85 -> predict FRII, confidence 0.85, bin (0.8, 0.9]
# 4 samples with p(FRII) = 0.35 -> predict FRI,  confidence 0.65, bin (0.6, 0.7]
ECE_PROBS = np.array([0.85] * 4 + [0.35] * 4)
ECE_TRUE = np.array([1, 1, 1, 0] + [0, 0, 0, 0])


def test_ece_by_hand_two_bins():
    # bin (0.8,0.9]: accuracy 3/4 = 0.75, confidence 0.85, gap 0.10 (overconfident)
    # bin (0.6,0.7]: accuracy 4/4 = 1.00, confidence 0.65, gap 0.35 (underconfident)
    # ECE = 4/8 * 0.10 + 4/8 * 0.35 = 0.225
    assert metrics.expected_calibration_error(ECE_TRUE, ECE_PROBS) == pytest.approx(0.225)
    # one bin pools them: accuracy 7/8 = 0.875, confidence 0.75 -> gaps cancel to 0.125
    assert metrics.expected_calibration_error(ECE_TRUE, ECE_PROBS, n_bins=1) == pytest.approx(0.125)


def test_ece_matrix_input_matches_positive_class_input():
    matrix = np.column_stack([1 - ECE_PROBS, ECE_PROBS])
    assert metrics.expected_calibration_error(ECE_TRUE, matrix) == pytest.approx(0.225)


def test_ece_bins_are_closed_on_the_right():
    # n_bins=4, edges 0, .25, .5, .75, 1 (exact in binary floating point)
    # p=0.75, true 1: correct, confidence 0.75 -> bin (0.5, 0.75]  gap |1 - 0.75| = 0.25
    # p=0.80, true 0: wrong,   confidence 0.80 -> bin (0.75, 1]    gap |0 - 0.80| = 0.80
    # ECE = (0.25 + 0.80) / 2 = 0.525   (a [lo, hi) convention would pool them: 0.275)
    assert metrics.expected_calibration_error([1, 0], [0.75, 0.8], n_bins=4) == pytest.approx(0.525)


def test_ece_rejects_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.expected_calibration_error([0, 1], [0.2, 1.5])


# ------------------------------------------------------------------- bootstrap


def _separable_sample(n, seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 2, size=n)
    scores = np.clip(rng.normal(0.35 + 0.3 * true, 0.2), 0, 1)
    return true, scores


def test_bootstrap_metric_is_deterministic_for_a_seed():
    true, scores = _separable_sample(80, seed=3)
    first = metrics.bootstrap_metric(metrics.auroc, true, scores, n_resamples=200, seed=7)
    second = metrics.bootstrap_metric(metrics.auroc, true, scores, n_resamples=200, seed=7)
    other = metrics.bootstrap_metric(metrics.auroc, true, scores, n_resamples=200, seed=8)
    assert tuple(first) == tuple(second)
    assert tuple(first) != tuple(other)


def test_bootstrap_metric_contains_point_estimate_and_narrows_with_more_data():
    small_true, small_scores = _separable_sample(60, seed=4)
    large_true, large_scores = _separable_sample(3000, seed=4)
    small = metrics.bootstrap_metric(metrics.auroc, small_true, small_scores, n_resamples=400, seed=0)
    large = metrics.bootstrap_metric(metrics.auroc, large_true, large_scores, n_resamples=400, seed=0)
    assert small.low <= metrics.auroc(small_true, small_scores) <= small.high
    assert large.low <= metrics.auroc(large_true, large_scores) <= large.high
    # width shrinks roughly as 1/sqrt(n): sqrt(3000/60) ~ 7, demand at least 3x
    assert (large.high - large.low) * 3 < small.high - small.low
    assert small.n_skipped == 0


def test_bootstrap_metric_skips_and_counts_single_class_resamples():
    # one positive in 6: a resample misses it with probability (5/6)^6 ~ 0.33
    true = [1, 0, 0, 0, 0, 0]
    scores = [0.9, 0.1, 0.2, 0.3, 0.4, 0.5]
    interval = metrics.bootstrap_metric(metrics.auroc, true, scores, n_resamples=300, seed=1)
    assert 60 < interval.n_skipped < 140
    # the lone positive always outranks every negative -> AUROC 1 whenever defined
    assert tuple(interval) == (1.0, 1.0)


def test_bootstrap_metric_all_resamples_undefined_is_an_error():
    with pytest.raises(ValueError, match="undefined on all 50 bootstrap resamples: .*only one class"):
        metrics.bootstrap_metric(metrics.auroc, [0, 0, 0], [0.1, 0.2, 0.3], n_resamples=50)


def test_bootstrap_metric_resamples_rows_of_a_probability_matrix():
    matrix = np.column_stack([1 - ECE_PROBS, ECE_PROBS])
    interval = metrics.bootstrap_metric(metrics.expected_calibration_error, ECE_TRUE, matrix, n_resamples=100)
    assert 0.0 <= interval.low <= 0.225 <= interval.high


def test_bootstrap_mean_over_seeds():
    per_seed_auroc = [0.80, 0.82, 0.84, 0.86]
    first = metrics.bootstrap_mean(per_seed_auroc, n_resamples=500, seed=0)
    assert tuple(first) == tuple(metrics.bootstrap_mean(per_seed_auroc, n_resamples=500, seed=0))
    # a resampled mean can never leave [min, max]; the mean 0.83 sits inside
    assert 0.80 <= first.low <= 0.83 <= first.high <= 0.86
    assert tuple(metrics.bootstrap_mean([0.9], n_resamples=10)) == (0.9, 0.9)


def test_bootstrap_percentiles_of_a_known_distribution():
    # ten 0s and ten 1s: a resampled mean is Binomial(20, 1/2) / 20.
    # P(X <= 5) = 0.021 and P(X <= 6) = 0.058, so the 2.5% quantile is 6/20 = 0.3
    # and by symmetry the 97.5% quantile is 14/20 = 0.7.
    values = [0.0] * 10 + [1.0] * 10
    assert tuple(metrics.bootstrap_mean(values, n_resamples=20000, seed=0)) == pytest.approx((0.3, 0.7))
    # the same for accuracy of always predicting 1 on ten of each class
    true = [0] * 10 + [1] * 10
    interval = metrics.bootstrap_metric(metrics.accuracy, true, [1] * 20, n_resamples=20000, seed=0)
    assert tuple(interval) == pytest.approx((0.3, 0.7))


def test_bootstrap_interval_unpacks_serialises_and_pickles():
    interval = metrics.BootstrapInterval(0.1, 0.2, n_skipped=3)
    low, high = interval
    assert (low, high) == (0.1, 0.2)
    assert json.dumps(interval) == "[0.1, 0.2]"
    restored = pickle.loads(pickle.dumps(interval))
    assert tuple(restored) == (0.1, 0.2) and restored.n_skipped == 3


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
    for name in ("FRI", "FRII"):
        # each class: 2 right out of 3 predicted and out of 3 true
        assert report["per_class"][name] == pytest.approx(
            {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3}
        )
    # positives 0.75, 0.45, 0.95 vs negatives 0.15, 0.65, 0.25:
    # 0.75 beats 3, 0.45 beats 2, 0.95 beats 3 -> 8/9
    assert report["auroc"] == pytest.approx(8 / 9)
    # FRII best-first: 0.95 P, 0.75 P, 0.65 N -> TPR0 2/3; only 3 FPs exist -> TPR10 1
    assert report["tpr0_FRII"] == pytest.approx(2 / 3)
    assert report["tpr10_FRII"] == 1.0
    # FRI best-first (lowest score): 0.15 P, 0.25 P, 0.45 N -> 2/3; TPR10 1
    assert report["tpr0_FRI"] == pytest.approx(2 / 3)
    assert report["tpr10_FRI"] == 1.0
    # confidences / correct: .85 ok, .65 wrong, .75 ok, .55 wrong, .95 ok, .75 ok
    # bins: (.5,.6] .55 gap .55; (.6,.7] .65 gap .65; (.7,.8] two .75 gap .25 each;
    #       (.8,.9] .85 gap .15; (.9,1] .95 gap .05
    # ECE = (0.55 + 0.65 + 2*0.25 + 0.15 + 0.05) / 6 = 1.9/6
    assert report["ece"] == pytest.approx(1.9 / 6)
    # ROC best-first: P P N P N N
    assert report["roc_curve"]["fpr"] == pytest.approx([0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    assert report["roc_curve"]["tpr"] == pytest.approx([0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert report["class_names"] == ["FRI", "FRII"]


def test_report_keys_follow_class_names():
    report = metrics.binary_classification_report(REPORT_TRUE, REPORT_SCORES, class_names=("A", "B"))
    assert {"tpr0_A", "tpr10_A", "tpr0_B", "tpr10_B"} <= report.keys()
    assert set(report["per_class"]) == {"A", "B"}
