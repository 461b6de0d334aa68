"""Evaluation of one run and the summary over seeds; hand-computed cases first."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import tiny_results
from rgmorph.evaluate import (
    bootstrap_intervals,
    flatten_report,
    metric_names,
    scalar_metrics,
    summarise_runs,
)

# 8 test sources, FRII (1) positive; scores sorted high to low:
#   score: 0.9 0.8 0.7 0.7 0.6 0.4 0.3 0.1
#   true:    1   1   0   1   0   1   0   0
TRUE = np.array([1, 1, 0, 1, 0, 1, 0, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.7, 0.6, 0.4, 0.3, 0.1])


def test_scalar_metrics_by_hand():
    values = scalar_metrics(TRUE, SCORES)
    # threshold 0.5 -> predicted 1 1 1 1 1 0 0 0: TP 3 (idx 0,1,3), FP 2 (idx 2,4), FN 1 (idx 5), TN 2
    assert values["accuracy"] == pytest.approx(5 / 8)
    assert values["precision_FRII"] == pytest.approx(3 / 5) and values["recall_FRII"] == pytest.approx(3 / 4)
    assert values["precision_FRI"] == pytest.approx(2 / 3) and values["recall_FRI"] == pytest.approx(2 / 4)
    assert values["f1_FRII"] == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # AUROC: pairs (pos, neg) with pos > neg: 0.9 and 0.8 beat all 4 negatives (8); 0.7 (pos) beats 0.6, 0.3,
    # 0.1 and ties 0.7 (3.5); 0.4 beats 0.3, 0.1 (2) -> 13.5 / 16
    assert values["auroc"] == pytest.approx(13.5 / 16)
    # TPR0 (FRII): 0.9, 0.8 are positives; the tie at 0.7 holds a negative -> stop before it: 2/4
    assert values["tpr0_FRII"] == pytest.approx(0.5)
    # TPR10: at most 9 false positives; there are only 4 negatives -> every positive: 1.0
    assert values["tpr10_FRII"] == pytest.approx(1.0)
    # FRI positive ranks by 1 - score: 0.1 (neg=FRI, TP), 0.3 (TP), 0.4 (FRII: first FP) -> TPR0 = 2/4
    assert values["tpr0_FRI"] == pytest.approx(0.5)
    assert set(values) == set(metric_names())


def test_tpr0_with_no_false_positives_at_all_is_one():
    # every FRII scored above every FRI: no false positive before all positives are found
    values = scalar_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert values["tpr0_FRII"] == 1.0 and values["tpr10_FRII"] == 1.0 and values["tpr0_FRI"] == 1.0
    assert values["auroc"] == 1.0 and values["accuracy"] == 1.0


def test_all_scores_tied_gives_tpr0_zero_and_auroc_half():
    values = scalar_metrics(np.array([0, 1, 0, 1]), np.full(4, 0.5))
    assert values["tpr0_FRII"] == 0.0 and values["tpr10_FRII"] == 1.0 and values["auroc"] == 0.5


def test_undefined_metrics_are_nan_not_errors():
    values = scalar_metrics(np.array([1, 1, 1]), np.array([0.9, 0.8, 0.2]))
    assert math.isnan(values["auroc"]) and math.isnan(values["tpr0_FRI"])
    assert values["tpr0_FRII"] == 1.0 and values["accuracy"] == pytest.approx(2 / 3)


def test_bootstrap_interval_of_a_perfect_classifier_is_a_point():
    true = np.array([0, 1] * 10)
    intervals = bootstrap_intervals([true, true], [true * 0.8 + 0.1, true * 0.6 + 0.2], n_resamples=50)
    assert intervals["accuracy"] == {"low": 1.0, "high": 1.0, "n_skipped": 0}
    # every source has confidence 0.9 (run 1) or 0.8 (run 2) and is right: ECE 0.1 and 0.2, mean 0.15
    assert intervals["ece"]["low"] == pytest.approx(0.15) and intervals["ece"]["high"] == pytest.approx(0.15)


def test_bootstrap_interval_brackets_the_seed_mean_and_is_reproducible():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 2, 60)
    scores = [np.clip(true * 0.5 + rng.normal(0.25, 0.2, 60), 0, 1) for _ in range(3)]
    first = bootstrap_intervals([true] * 3, scores, n_resamples=100, seed=4)
    again = bootstrap_intervals([true] * 3, scores, n_resamples=100, seed=4)
    assert first == again
    mean_accuracy = np.mean([scalar_metrics(true, s)["accuracy"] for s in scores])
    assert first["accuracy"]["low"] <= mean_accuracy <= first["accuracy"]["high"]


def test_bootstrap_refuses_runs_over_different_sources():
    with pytest.raises(ValueError, match="different test sources"):
        bootstrap_intervals([np.array([0, 1]), np.array([1, 0])], [np.array([0.2, 0.8])] * 2)


def test_metrics_json_holds_every_metric_and_its_interval():
    tree = tiny_results.shared()
    report = json.loads(tree["metrics"][0].read_text())
    assert report["split"] == "test" and report["n_samples"] == 4  # 2 per class in the synthetic test split
    assert report["run"]["kind"] == "scratch" and report["run"]["checkpoint_sha256"]
    intervals = report["bootstrap"]["intervals"]
    assert set(intervals) == set(metric_names())
    for name in ("accuracy", "ece"):
        assert intervals[name]["low"] <= intervals[name]["high"]
    assert len(report["confusion_matrix"]) == 2 and sum(map(sum, report["confusion_matrix"])) == 4


def test_runs_and_summary_agree():
    tree = tiny_results.shared()
    runs = pd.read_csv(tree["runs"])
    summary = pd.read_csv(tree["summary"], keep_default_na=False)
    assert len(runs) == 4 and set(runs["kind"]) == {"scratch"}
    assert {f"{m}_ci_low" for m in metric_names()} <= set(runs.columns)
    assert len(summary) == 2 and list(summary["seeds"]) == [2, 2]
    for row in summary.itertuples():
        chosen = runs[runs["survey"] == row.survey]
        assert row.accuracy_mean == pytest.approx(chosen["accuracy"].mean(), abs=1e-4)
        assert row.accuracy_std == pytest.approx(chosen["accuracy"].std(ddof=1), abs=1e-4)
        assert row.accuracy_ci_low <= row.accuracy_ci_high


def test_transfer_runs_form_their_own_variant(tmp_path):
    tree = tiny_results.shared()
    metrics, predictions = [], []
    for k, source in enumerate(tree["metrics"][:2]):  # two FIRST seeds, relabelled as transfer runs
        report = json.loads(source.read_text())
        report["run"].update(pretrained_on="NVSS", kind="transfer")
        folder = tmp_path / "FIRST" / "tang2019" / "transfer-from-NVSS" / f"seed{k}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(report))
        (folder / "predictions.csv").write_bytes(tree["predictions"][k].read_bytes())
        metrics.append(folder / "metrics.json")
        predictions.append(folder / "predictions.csv")
    summary = summarise_runs(tree["metrics"] + metrics, tmp_path / "runs.csv", tmp_path / "summary.csv",
                             tree["predictions"] + predictions, n_resamples=20)
    modes = summary.set_index(["survey", "kind"])["pretrained_on"].to_dict()
    assert modes == {("FIRST", "scratch"): "", ("NVSS", "scratch"): "", ("FIRST", "transfer"): "NVSS"}
    row = flatten_report(json.loads(metrics[0].read_text()), metrics[0])
    assert row["kind"] == "transfer" and row["pretrained_on"] == "NVSS"
