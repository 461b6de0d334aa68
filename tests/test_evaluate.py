"""Evaluation of one run and the summary over seeds; hand-computed cases first."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import tiny_results
from rgmorph.evaluate import GROUP_COLUMNS, flatten_report, summarise_runs
from rgmorph.metrics import binary_classification_report, bootstrap_intervals, metric_names, scalar_metrics

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


# ----------------------------------------- binary columns and numbers unchanged; K classes


# runs.csv columns of a binary study, and summary.csv numbers (n_resamples=20) on test_metrics' frozen
# predictions, recorded before K-class support was added: the K-class code must not change them.
FROZEN_RUN_COLUMNS = ['model', 'kind', 'pretrained_on', 'trained_on', 'survey', 'seed', 'split', 'n_test',
                      'n_test_FRI', 'n_test_FRII', 'best_epoch', 'best_val_accuracy', 'accuracy', 'auroc', 'ece', 'precision_FRI', 'recall_FRI',
                      'f1_FRI', 'precision_FRII', 'recall_FRII', 'f1_FRII', 'tpr0_FRI', 'tpr10_FRI', 'tpr0_FRII',
                      'tpr10_FRII', 'accuracy_ci_low', 'accuracy_ci_high', 'auroc_ci_low', 'auroc_ci_high',
                      'precision_FRI_ci_low', 'precision_FRI_ci_high', 'recall_FRI_ci_low', 'recall_FRI_ci_high',
                      'f1_FRI_ci_low', 'f1_FRI_ci_high', 'precision_FRII_ci_low', 'precision_FRII_ci_high',
                      'recall_FRII_ci_low', 'recall_FRII_ci_high', 'f1_FRII_ci_low', 'f1_FRII_ci_high',
                      'tpr0_FRII_ci_low', 'tpr0_FRII_ci_high', 'tpr10_FRII_ci_low', 'tpr10_FRII_ci_high',
                      'tpr0_FRI_ci_low', 'tpr0_FRI_ci_high', 'tpr10_FRI_ci_low', 'tpr10_FRI_ci_high', 'ece_ci_low',
                      'ece_ci_high', 'metrics_file', 'checkpoint_sha256', 'predictions_file']
FROZEN_SUMMARY = {'accuracy_ci_low': 0.75,
                  'auroc_std': 0.009820927516479871,
                  'auroc_ci_high': 0.9877678571428572,
                  'f1_FRII_ci_low': 0.7082342657342657,
                  'tpr0_FRI_ci_high': 0.9391666666666666,
                  'ece_mean': 0.17562500000000003,
                  'ece_ci_low': 0.16925520833333332,
                  'precision_FRI_seed_ci_high': 0.9}


def _binary_run_tree(root):
    from test_metrics import FROZEN_SCORES, FROZEN_SCORES_2, FROZEN_TRUE

    paths = []
    for seed, scores in enumerate([FROZEN_SCORES, FROZEN_SCORES_2]):
        folder = root / "FIRST" / "tang2019" / f"seed{seed}"
        folder.mkdir(parents=True)
        report = binary_classification_report(FROZEN_TRUE, scores)
        report["split"] = "test"
        report["bootstrap"] = {"intervals": bootstrap_intervals([FROZEN_TRUE], [scores], n_resamples=20, seed=0)}
        report["run"] = {"model": "tang2019", "kind": "scratch", "pretrained_on": "", "trained_on": "FIRST",
                         "survey": "FIRST", "seed": seed, "best_epoch": 1, "best_val_accuracy": 0.5,
                         "checkpoint_sha256": "x"}
        (folder / "metrics.json").write_text(json.dumps(report))
        pd.DataFrame({"name": [f"s{i}" for i in range(len(FROZEN_TRUE))], "label": FROZEN_TRUE,
                      "class_name": [("FRI", "FRII")[t] for t in FROZEN_TRUE], "probability_FRI": 1 - scores,
                      "probability_FRII": scores, "predicted": (scores >= 0.5).astype(int)}).to_csv(
            folder / "predictions.csv", index=False)
        paths.append(folder / "metrics.json")
    return paths


def test_binary_runs_and_summary_are_unchanged_by_the_k_class_code(tmp_path):
    paths = _binary_run_tree(tmp_path)
    summary = summarise_runs(paths, tmp_path / "runs.csv", tmp_path / "summary.csv", n_resamples=20)
    assert list(pd.read_csv(tmp_path / "runs.csv").columns) == FROZEN_RUN_COLUMNS
    names = metric_names()
    expected = [f"{m}_{p}" for m in names for p in ("mean", "std", "ci_low", "ci_high", "seed_ci_low", "seed_ci_high")]
    assert list(summary.columns) == GROUP_COLUMNS + ["seeds", "seed_list", "n_test", "n_test_FRI",
                                                                      "n_test_FRII", "val_accuracy_mean"] + expected
    assert {key: summary.iloc[0][key] for key in FROZEN_SUMMARY} == FROZEN_SUMMARY


THREE_CLASSES = ["FRI", "FRII", "Bent"]


def make_three_class_runs(root, monkeypatch, seeds=(0, 1), n_test=30):
    """evaluate_checkpoint on a synthetic 3-class dataset, the network replaced by fixed logits per seed.

    Returns (metrics paths, predictions paths, dataset path) under ``root``."""
    import torch

    import rgmorph.train
    from rgmorph.evaluate import evaluate_checkpoint

    n = n_test + 6
    labels = np.arange(n) % 3
    dataset = root / "datasets" / "FIRST.npz"
    dataset.parent.mkdir(parents=True)
    np.savez(dataset, images=np.zeros((n, 8, 8), np.float32), labels=labels, names=[f"J{i:04d}" for i in range(n)],
             split=np.array(["train"] * 6 + ["test"] * n_test), class_names=np.array(THREE_CLASSES),
             survey=np.array("FIRST"))
    metrics_paths, predictions_paths = [], []
    for seed in seeds:
        logits = np.random.default_rng(seed).normal(0, 1, (n, 3)) + 1.2 * np.eye(3)[labels]
        checkpoint = {"survey": "FIRST", "model_name": "tang2019", "seed": seed, "pretrained_on": "",
                      "parameters": 10, "best_epoch": 1, "best_val_accuracy": 0.5, "best_val_loss": 1.0,
                      "class_names": THREE_CLASSES}
        monkeypatch.setattr(rgmorph.train, "load_checkpoint", lambda path, device, c=checkpoint: (None, c))
        monkeypatch.setattr(rgmorph.train, "predict_logits",
                            lambda model, images, z=logits: torch.from_numpy(z[6:]).float())
        folder = root / "FIRST" / "tang2019" / f"seed{seed}"
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"stand-in")
        evaluate_checkpoint(folder / "checkpoint.pt", dataset, folder / "metrics.json", folder / "predictions.csv",
                            n_resamples=20)
        metrics_paths.append(folder / "metrics.json")
        predictions_paths.append(folder / "predictions.csv")
    return metrics_paths, predictions_paths, dataset


def test_evaluate_and_summarise_three_classes(tmp_path, monkeypatch):
    from sklearn import metrics as skm

    metrics_paths, predictions_paths, _ = make_three_class_runs(tmp_path, monkeypatch)
    report = json.loads(metrics_paths[0].read_text())
    predictions = pd.read_csv(predictions_paths[0])
    assert np.array(report["confusion_matrix"]).shape == (3, 3) and report["n_samples"] == 30
    assert report["class_names"] == THREE_CLASSES
    assert set(report["per_class"]) == set(report["roc_curves"]) == set(THREE_CLASSES)
    assert report["macro_f1"] == pytest.approx(skm.f1_score(predictions["label"], predictions["predicted"],
                                                            average="macro"))
    assert set(report["bootstrap"]["intervals"]) == set(metric_names(THREE_CLASSES))
    summary = summarise_runs(metrics_paths, tmp_path / "runs.csv", tmp_path / "summary.csv", n_resamples=20)
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert [c for c in runs.columns if c in metric_names(THREE_CLASSES)][3:] == metric_names(THREE_CLASSES)[2:-1]
    for name in ("macro_f1", "auroc_Bent", "f1_Bent", "tpr0_Bent", "tpr10_FRI", "precision_FRII"):
        assert name in runs.columns and f"{name}_ci_low" in runs.columns
        assert {f"{name}_mean", f"{name}_std", f"{name}_ci_low", f"{name}_seed_ci_high"} <= set(summary.columns)
    assert summary.iloc[0]["macro_f1_mean"] == pytest.approx(runs["macro_f1"].mean())
    assert summary.iloc[0]["macro_f1_ci_low"] <= summary.iloc[0]["macro_f1_ci_high"]
    assert summary.iloc[0]["seeds"] == 2
