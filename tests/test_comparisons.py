"""Paired comparisons of variants on the same test sources: hand-computed ensembles, McNemar and bootstrap."""

import logging
from math import comb

import numpy as np
import pandas as pd
import pytest

from rgmorph.comparisons import COLUMNS, holm, paired_comparisons, seed_ensembles, variant_label
from rgmorph.metrics import scalar_metrics

NAMES = [f"s{i}" for i in range(10)]
LABELS = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
# Seed-ensemble FRII probabilities. Right/wrong per source (threshold 0.5):
#   source: s0 s1 s2 s3 s4 s5 s6 s7 s8 s9
#   good:    R  R  R  R  R  R  W  R  R  W   -> 8/10
#   poor:    W  W  W  W  W  W  R  R  R  W   -> 3/10
# McNemar: b (good right, poor wrong) = s0..s5 = 6, c (good wrong, poor right) = s6 = 1.
GOOD = np.array([0.8, 0.7, 0.9, 0.6, 0.55, 0.2, 0.75, 0.1, 0.3, 0.65])
POOR = np.array([0.2, 0.4, 0.3, 0.45, 0.1, 0.8, 0.3, 0.2, 0.4, 0.9])


def write_predictions(path, names, labels, probabilities, class_names, shuffle=False):
    """A predictions.csv as evaluate_checkpoint writes it; ``shuffle`` reverses the rows (alignment is by name)."""
    frame = pd.DataFrame({"name": names, "label": labels, "class_name": [class_names[k] for k in labels],
                          **{f"probability_{c}": probabilities[:, k] for k, c in enumerate(class_names)},
                          "predicted": probabilities.argmax(1)})
    path.parent.mkdir(parents=True, exist_ok=True)
    (frame.iloc[::-1] if shuffle else frame).to_csv(path, index=False)
    return str(path)


def binary_seeds(p, spread):
    """Two seeds whose FRII probabilities average to ``p``, as (N, 2) matrices."""
    return [np.column_stack([1 - q, q]) for q in (p + spread, p - spread)]


def run_row(model, predictions_file, seed, survey="FIRST", pretrained_on="", trained_on=None):
    return {"model": model, "kind": "transfer" if pretrained_on else "scratch", "pretrained_on": pretrained_on,
            "trained_on": trained_on or pretrained_on or survey, "survey": survey, "seed": seed,
            "predictions_file": predictions_file}


def write_variant(tmp_path, model, seeds, names=NAMES, labels=LABELS, class_names=("FRI", "FRII"), **where):
    rows = []
    for seed, probabilities in enumerate(seeds):
        path = tmp_path / model / where.get("survey", "FIRST") / f"seed{seed}" / "predictions.csv"
        rows.append(run_row(model, write_predictions(path, names, labels, probabilities, class_names,
                                                     shuffle=seed == 1), seed, **where))
    return rows


def compare(tmp_path, rows, **options):
    runs = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(runs, index=False)
    return paired_comparisons(runs, tmp_path / "comparisons.csv", **options)


def good_and_poor(tmp_path):
    # good's s3 seeds (0.9, 0.3) disagree: the ensemble (0.6) is right where seed 1 alone is wrong.
    spread = np.full(10, 0.05)
    spread[3] = 0.3
    return (write_variant(tmp_path, "alexnet", binary_seeds(POOR, np.full(10, 0.05)))
            + write_variant(tmp_path, "resnet", binary_seeds(GOOD, spread)))


def test_binary_pair_by_hand(tmp_path):
    table = compare(tmp_path, good_and_poor(tmp_path))
    assert list(table.columns) == COLUMNS and len(table) == 1
    row = table.iloc[0]
    # A is the more accurate even though it sorts second.
    assert row["variant_a"] == "resnet, FIRST" and row["variant_b"] == "alexnet, FIRST"
    assert (row["n_sources"], row["seeds_a"], row["seeds_b"]) == (10, 2, 2)
    assert row["accuracy_a"] == pytest.approx(0.8) and row["accuracy_b"] == pytest.approx(0.3)
    assert row["accuracy_diff"] == pytest.approx(0.5)
    assert (row["mcnemar_b"], row["mcnemar_c"]) == (6, 1)
    hand_p = 2 * sum(comb(7, k) for k in range(2)) / 2 ** 7
    assert hand_p == 0.125 and row["mcnemar_p"] == pytest.approx(hand_p)
    assert row["mcnemar_p_holm"] == pytest.approx(hand_p)  # one pair: nothing to correct
    # AUROC of the ensemble as metrics.py computes it. good, (pos, neg) pairs ranked right: 0.8 and 0.9 beat
    # all 5 negatives, 0.7 beats 4 (not 0.75), 0.6 and 0.55 beat 3 (not 0.75, 0.65) -> 20 of 25.
    assert row["auroc_a"] == pytest.approx(scalar_metrics(LABELS, GOOD)["auroc"])
    assert row["auroc_a"] == pytest.approx(20 / 25)
    assert row["auroc_b"] == pytest.approx(scalar_metrics(LABELS, POOR)["auroc"])
    assert row["auroc_diff"] == pytest.approx(row["auroc_a"] - row["auroc_b"])
    for metric in ("accuracy", "auroc"):
        assert row[f"{metric}_diff_ci_low"] <= row[f"{metric}_diff"] <= row[f"{metric}_diff_ci_high"]
        assert row[f"{metric}_diff_ci_low"] < row[f"{metric}_diff_ci_high"]
    # The interval excludes 0 (0.5 up on 10 sources) but p = 0.125: not significant.
    assert row["accuracy_diff_ci_low"] > 0 and not row["significant"]
    written = pd.read_csv(tmp_path / "comparisons.csv")
    assert written["mcnemar_b"].tolist() == [6] and written["accuracy_diff"].iloc[0] == pytest.approx(0.5)


def test_bootstrap_is_reproducible_and_seeded(tmp_path):
    rows = good_and_poor(tmp_path)
    intervals = ["accuracy_diff_ci_low", "accuracy_diff_ci_high", "auroc_diff_ci_low", "auroc_diff_ci_high"]
    first = compare(tmp_path, rows, n_resamples=300, seed=0)[intervals]
    again = compare(tmp_path, rows, n_resamples=300, seed=0)[intervals]
    other = compare(tmp_path, rows, n_resamples=300, seed=1)[intervals]
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_identical_models_do_not_differ(tmp_path):
    seeds = binary_seeds(GOOD, np.full(10, 0.05))
    table = compare(tmp_path, write_variant(tmp_path, "resnet", seeds) + write_variant(tmp_path, "copy", seeds))
    row = table.iloc[0]
    assert row["accuracy_diff"] == 0 and row["auroc_diff"] == 0
    assert (row["accuracy_diff_ci_low"], row["accuracy_diff_ci_high"]) == (0, 0)
    assert (row["auroc_diff_ci_low"], row["auroc_diff_ci_high"]) == (0, 0)
    assert (row["mcnemar_b"], row["mcnemar_c"], row["mcnemar_p"], row["mcnemar_p_holm"]) == (0, 0, 1, 1)
    assert not row["significant"]


def test_clear_winner_is_significant(tmp_path):
    # best right on all 10, worst right only on s9: b = 9, c = 0, p = 2 / 2**9.
    worst = 1.0 - LABELS.astype(float)
    worst[9] = 0.1
    rows = (write_variant(tmp_path, "best", binary_seeds(np.where(LABELS == 1, 0.8, 0.2), np.zeros(10))[:1])
            + write_variant(tmp_path, "worst", [np.column_stack([1 - worst, worst])]))
    row = compare(tmp_path, rows).iloc[0]
    assert (row["variant_a"], row["seeds_a"], row["seeds_b"]) == ("best, FIRST", 1, 1)
    assert (row["mcnemar_b"], row["mcnemar_c"]) == (9, 0)
    assert row["mcnemar_p"] == pytest.approx(2 / 2 ** 9)
    assert row["accuracy_diff"] == pytest.approx(0.9) and row["accuracy_diff_ci_low"] > 0
    assert row["significant"]


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]).size == 0


def test_other_sources_and_surveys_are_not_compared(tmp_path, caplog):
    seeds = binary_seeds(GOOD, np.full(10, 0.05))
    other_names = NAMES[:9] + ["elsewhere"]
    rows = (write_variant(tmp_path, "resnet", seeds) + write_variant(tmp_path, "alexnet", seeds, names=other_names)
            + write_variant(tmp_path, "vgg", seeds, survey="NVSS")
            + write_variant(tmp_path, "resnet", seeds, survey="NVSS", trained_on="FIRST"))
    with caplog.at_level(logging.WARNING, logger="rgmorph.comparisons"):
        table = compare(tmp_path, rows)
    assert "different test sources" in caplog.text
    # FIRST's pair is skipped; NVSS keeps its one pair (and no pair crosses surveys).
    assert table["survey"].tolist() == ["NVSS"]
    assert {table["variant_a"].iloc[0], table["variant_b"].iloc[0]} == {"vgg, NVSS", "resnet, NVSS (trained on FIRST)"}


def test_variant_label():
    assert variant_label(("cnn", "transfer", "FIRST", "FIRST", "NVSS")) == "cnn, NVSS (transfer from FIRST)"
    assert variant_label(("cnn", "scratch", "", "NVSS", "NVSS")) == "cnn, NVSS"


def test_three_classes(tmp_path):
    classes = ("FRI", "FRII", "bent")
    labels = np.array([0, 0, 1, 1, 2, 2])
    # a: argmax right but on s5; column 0 ranks s5 (0.55) above the FRI s1 (0.5): AUROC_FRI 7/8, others 1.
    a = np.array([[.6, .3, .1], [.5, .2, .3], [.2, .7, .1], [.45, .5, .05], [.1, .1, .8], [.55, .05, .4]])
    # b: right on s0, s3, s5. b (a right, b wrong) = s1, s2, s4 = 3; c (a wrong, b right) = s5 = 1.
    b = np.array([[.7, .2, .1], [.2, .6, .2], [.5, .3, .2], [.3, .6, .1], [.5, .3, .2], [.1, .2, .7]])
    shift = np.array([0.05, -0.05, 0.0])
    names = [f"t{i}" for i in range(6)]
    rows = (write_variant(tmp_path, "a", [a + shift, a - shift], names, labels, classes)
            + write_variant(tmp_path, "b", [b + shift, b - shift], names, labels, classes))
    row = compare(tmp_path, rows).iloc[0]
    assert row["variant_a"] == "a, FIRST"
    assert row["accuracy_a"] == pytest.approx(5 / 6) and row["accuracy_b"] == pytest.approx(3 / 6)
    assert row["auroc_a"] == pytest.approx((7 / 8 + 1 + 1) / 3)
    assert row["auroc_a"] == pytest.approx(scalar_metrics(labels, a, classes)["auroc"])
    assert row["auroc_b"] == pytest.approx(scalar_metrics(labels, b, classes)["auroc"])
    assert (row["mcnemar_b"], row["mcnemar_c"]) == (3, 1)
    assert row["mcnemar_p"] == pytest.approx(2 * (comb(4, 0) + comb(4, 1)) / 2 ** 4)
    assert row["accuracy_diff_ci_low"] <= 1 / 3 <= row["accuracy_diff_ci_high"]
    assert not row["significant"]


def test_seed_ensembles_score_the_mean_of_the_seeds_with_source_intervals(tmp_path):
    # good's seed 1 alone is wrong on s3 (0.3 for an FRII); the ensemble's 0.6 is right: 8/10 as tabled above
    rows = good_and_poor(tmp_path)
    runs = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(runs, index=False)
    table = seed_ensembles(runs, tmp_path / "ensembles.csv").set_index("variant")
    assert list(table.index) == ["ensemble(alexnet)", "ensemble(resnet)"]
    good = table.loc["ensemble(resnet)"]
    assert good["seeds"] == 2 and good["n_sources"] == 10
    assert good["accuracy"] == pytest.approx(0.8) and table.loc["ensemble(alexnet)", "accuracy"] == pytest.approx(0.3)
    assert good["auroc"] == pytest.approx(scalar_metrics(LABELS, GOOD)["auroc"])
    assert good["recall_FRII"] == pytest.approx(1.0) and good["recall_FRI"] == pytest.approx(0.6)
    assert good["accuracy_ci_low"] < 0.8 < good["accuracy_ci_high"] <= 1.0
    written = pd.read_csv(tmp_path / "ensembles.csv").set_index("variant")
    assert written["accuracy"].to_dict() == pytest.approx(table["accuracy"].to_dict())


def test_the_ensembles_gain_over_its_seeds_is_paired_by_source(tmp_path):
    # two seeds: seed 0 right on all ten sources, seed 1 wrong on s0 and s5; their mean (the ensemble) is right
    # everywhere, so the ensemble gains (0 + 0.5 + 0.5) / 10 over the seeds' mean accuracy of 0.9
    right = np.where(LABELS == 1, 0.9, 0.1)
    wrong = right.copy()
    wrong[[0, 5]] = 1 - right[[0, 5]] + np.array([0.2, -0.2])  # 0.3 for the FRII s0, 0.7 for the FRI s5
    rows = write_variant(tmp_path, "tang2019", [np.column_stack([1 - p, p]) for p in (right, wrong)])
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    row = seed_ensembles(tmp_path / "runs.csv", tmp_path / "ensembles.csv").iloc[0]
    assert row["accuracy"] == 1.0 and row["accuracy_minus_seed_mean"] == pytest.approx(0.1)
    assert 0.0 <= row["accuracy_minus_seed_mean_ci_low"] < 0.1 < row["accuracy_minus_seed_mean_ci_high"] <= 0.5
