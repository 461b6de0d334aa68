"""Stage 6: score each trained model once on the test split, then summarise over seeds.

Per run (``evaluate_checkpoint``): metrics.json (accuracy, per-class precision/recall/F1,
confusion matrix, ROC and AUROC, TPR0/TPR10 with each class as the positive one, ECE) with a
95% percentile-bootstrap interval over test sources for every scalar, and predictions.csv.
Two classes give the binary report (class 1 positive, threshold 0.5); K >= 3 classes the
K-class one (argmax, one-vs-rest ROC/AUROC/TPR per class, macro-F1, K x K confusion matrix).

Over runs (``summarise_runs``): runs.csv, one row per run; summary.csv, one row per variant
(model, kind, training survey, test survey, and the transfer mode where a study has more than one)
with, for each metric, the mean and sample std over
seeds, a bootstrap interval of the seed mean over test sources (``ci``: sources are resampled
jointly for all seeds, so it holds the test-set sampling error that dominates with ~200 test
sources) and a bootstrap interval over the seed values themselves (``seed_ci``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from rgmorph.decision import adjusted_probabilities, decision_record, fit_class_offsets
from rgmorph.layout import DEFAULT_MODE, Run
from rgmorph.files import read_checked_csv, sha256_file, write_csv_atomic, write_json_atomic
from rgmorph.metrics import (
    bootstrap_intervals,
    bootstrap_mean,
    classification_report,
    classification_scores,
    metric_names,
)

log = logging.getLogger(__name__)

CLASS_NAMES = ("FRI", "FRII")
N_RESAMPLES = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


# Columns of the per-run table that are averaged over seeds.
SUMMARY_METRICS = metric_names()

# What evaluation carries over from a fine-tuned run's checkpoint, for the trace from metrics to models.
_TRANSFER_DETAILS = ("pretrained_checkpoint", "pretrained_checkpoint_sha256", "frozen", "reinitialised")


# ------------------------------------------------------------------ one run


def evaluate_checkpoint(checkpoint_path: str | Path, dataset_path: str | Path, metrics_path: str | Path,
                        predictions_path: str | Path, n_resamples: int = N_RESAMPLES,
                        bootstrap_seed: int = BOOTSTRAP_SEED, device: str = "cpu", split: str = "test") -> dict:
    """Score one checkpoint on one split of the dataset: ``test``, an extra one such as ``uncertain``, or
    ``validation`` (the checkpoint's own hold-out, for choices made on validation such as class_balance)."""
    import torch

    from rgmorph.dataset import load_dataset
    from rgmorph.train import load_checkpoint, predict_logits

    model, checkpoint = load_checkpoint(checkpoint_path, device)  # predictions come back on the CPU
    dataset = load_dataset(dataset_path)
    if dataset["survey"] != checkpoint["survey"]:
        log.info("cross-survey evaluation: model trained on %s, tested on %s", checkpoint["survey"], dataset["survey"])
    test = split_indices(dataset, checkpoint, split)
    if not len(test):
        raise ValueError(f"{dataset_path}: no source in split {split!r} (splits present: "
                         f"{sorted(set(dataset['split'].tolist()))}); check catalogue assign_split / evaluate.extra_splits")

    def probabilities_of(indices: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(dataset["images"][indices]).unsqueeze(1)
        return torch.softmax(predict_logits(model, images), dim=1).numpy().astype(np.float64)

    probabilities = probabilities_of(test)
    labels = dataset["labels"][test]
    class_names = tuple(dataset["class_names"])
    probabilities, decision = _decided(probabilities, split, checkpoint, dataset, dataset_path, probabilities_of)
    report = classification_report(labels, probabilities, class_names)
    report["split"] = split
    if decision is not None:  # argmax runs' metrics.json stay as they were
        report["class_offsets"] = decision
        report["decision"] = "argmax after class_offsets" if decision["applied"] else report.get("decision", "argmax")
    intervals = bootstrap_intervals([labels], [classification_scores(probabilities)], class_names, n_resamples,
                                    CONFIDENCE, bootstrap_seed)
    report["bootstrap"] = {"method": f"percentile bootstrap over {split} sources", "n_resamples": n_resamples,
                           "confidence": CONFIDENCE, "seed": bootstrap_seed, "intervals": intervals}
    report["run"] = run_record(checkpoint, checkpoint_path, dataset["survey"])
    report["run"].update(dataset=str(dataset_path), dataset_sha256=sha256_file(dataset_path))
    predictions = pd.DataFrame({
        "name": dataset["names"][test], "label": labels,
        "class_name": [dataset["class_names"][label] for label in labels],
        **{f"probability_{name}": probabilities[:, k] for k, name in enumerate(dataset["class_names"])},
        "predicted": probabilities.argmax(1),
    })
    write_csv_atomic(predictions_path, predictions)
    write_json_atomic(metrics_path, report)
    log.info("%s %s seed %s: %s accuracy %.3f [%.3f, %.3f], AUROC %.3f on %d sources", checkpoint["model_name"],
             dataset["survey"], checkpoint["seed"], split, report["accuracy"], intervals["accuracy"]["low"],
             intervals["accuracy"]["high"], report["auroc"], len(test))
    return report


def _decided(probabilities: np.ndarray, split: str, checkpoint: dict, dataset: dict, dataset_path: str | Path,
             probabilities_of) -> tuple[np.ndarray, dict | None]:
    """The split's probabilities under the run's decision rule (train.decision), and its record: 'balanced'
    offsets are fitted on the run's own validation hold-out, whose scores stay the network's own."""
    if (checkpoint.get("settings") or {}).get("decision") != "balanced":
        return probabilities, None
    validation = split_indices(dataset, checkpoint, "validation")
    if not len(validation):
        raise ValueError(f"train.decision 'balanced': none of the run's {len(checkpoint['validation_names'])} validation "
                         f"sources is in {dataset_path}; the offsets are fitted on them (use decision: argmax)")
    validation_probabilities = probabilities if split == "validation" else probabilities_of(validation)
    validation_labels = dataset["labels"][validation]
    offsets = fit_class_offsets(validation_labels, validation_probabilities)
    applied = split != "validation"
    record = decision_record(tuple(dataset["class_names"]), offsets, validation_labels, validation_probabilities,
                             applied)
    return (adjusted_probabilities(probabilities, offsets) if applied else probabilities), record


def split_indices(dataset: dict, checkpoint: dict, split: str) -> np.ndarray:
    """The dataset rows of a split; 'validation' is the run's own hold-out from the training split, by name."""
    if split == "validation":
        return np.flatnonzero(np.isin(dataset["names"], checkpoint["validation_names"]))
    return np.flatnonzero(dataset["split"] == split)


# ---------------------------------------------------------------- all runs


def transfer_mode(checkpoint_path: str | Path, pretrained_on: str) -> str:
    """A transfer run's mode, from its folder (rgmorph.layout); 'frozen' outside the layout, '' from scratch."""
    if not pretrained_on:
        return ""
    try:
        return Run.from_path(checkpoint_path).mode or DEFAULT_MODE
    except ValueError:
        return DEFAULT_MODE


def run_record(checkpoint: dict, checkpoint_path: str | Path, survey: str) -> dict:
    """What metrics.json says of the run: which one (its kind as training recorded it, its transfer mode
    as its folder says) and how it was chosen."""
    pretrained_on = checkpoint.get("pretrained_on") or ""
    run = Run(checkpoint["survey"], checkpoint["model_name"], int(checkpoint["seed"]), pretrained_on,
              transfer_mode(checkpoint_path, pretrained_on))
    return {
        "model": run.model, "kind": run.kind, "pretrained_on": run.pretrained_on, "mode": run.mode,
        "trained_on": run.pretrained_on or run.survey, "survey": survey, "seed": run.seed,
        "parameters": checkpoint["parameters"], "best_epoch": checkpoint["best_epoch"],
        "best_val_accuracy": checkpoint["best_val_accuracy"], "best_val_loss": checkpoint["best_val_loss"],
        "checkpoint": str(checkpoint_path), "checkpoint_sha256": sha256_file(checkpoint_path),
        "environment": checkpoint.get("environment"),
        **{key: checkpoint[key] for key in _TRANSFER_DETAILS if checkpoint.get(key) is not None},
    }


def flatten_report(report: dict, path: str | Path | None = None) -> dict:
    """One row of the tidy per-run table."""
    run = report["run"]
    row = {"model": run["model"], "kind": run["kind"], "pretrained_on": run["pretrained_on"],
           # metrics.json from before modes has none: its transfer runs are 'frozen'
           "mode": run.get("mode") or (DEFAULT_MODE if run["pretrained_on"] else ""),
           "trained_on": run["trained_on"],
           "survey": run["survey"], "seed": run["seed"], "split": report.get("split", "test"),
           "n_test": report["n_samples"],
           # per class: the positives (and, for the other classes, the negatives) behind TPR0/TPR10
           **{f"n_test_{name}": values["support"] for name, values in report["per_class"].items()},
           "best_epoch": run["best_epoch"],
           "best_val_accuracy": run["best_val_accuracy"], "accuracy": report["accuracy"], "auroc": report["auroc"],
           "ece": report["ece"]}
    row.update(_metric_columns(report))
    for metric, interval in (report.get("bootstrap") or {}).get("intervals", {}).items():
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = interval["low"], interval["high"]
    row["metrics_file"] = str(path) if path is not None else ""
    row["checkpoint_sha256"] = run.get("checkpoint_sha256", "")
    return row


def _metric_columns(report: dict) -> dict:
    """Per-class and TPR columns of a run: binary reports in their stored order (as before K classes),
    K-class ones in ``metric_names`` order (metrics.json sorts its keys)."""
    columns = {}
    if len(report["per_class"]) > 2:
        for metric in metric_names(report["class_names"]):
            kind, _, name = metric.partition("_")
            in_class = kind in ("precision", "recall", "f1") and name in report["per_class"]
            columns[metric] = report["per_class"][name][kind] if in_class else report[metric]
        return {key: value for key, value in columns.items() if key not in ("accuracy", "auroc", "ece")}
    for name, values in report["per_class"].items():
        for metric in ("precision", "recall", "f1"):
            columns[f"{metric}_{name}"] = values[metric]
    columns.update({key: value for key, value in report.items() if key.startswith("tpr")})
    return columns


GROUP_COLUMNS = ["model", "kind", "pretrained_on", "trained_on", "survey"]


def group_columns(frame: pd.DataFrame) -> list[str]:
    """GROUP_COLUMNS, and 'mode' where the runs or summary table has one (a study with several transfer modes)."""
    return GROUP_COLUMNS + (["mode"] if "mode" in frame.columns else [])


def drop_single_mode(runs: pd.DataFrame) -> pd.DataFrame:
    """runs without the mode column when every transfer run is 'frozen': the tables of a study without
    other modes keep the columns they had before modes (DVC tracks them)."""
    if set(runs["mode"]) <= {"", DEFAULT_MODE}:
        return runs.drop(columns="mode")
    return runs
PREDICTION_COLUMNS = ["name", "label", "class_name", "predicted"]  # and probability_<class> per class


def evaluation_rule(path: str | Path) -> str:
    """The rule that writes an evaluation file (metrics or predictions) of a run: what remakes it."""
    try:
        run = Run.from_path(path)
    except ValueError:  # not in the workflow's layout
        run = Run("", "", 0)
    other_mode = run.mode not in ("", DEFAULT_MODE)  # finetune, random_frozen: their own rules
    rule = "evaluate" + ("_transfer" if run.pretrained_on else "") + ("_mode" if other_mode else "")
    extra_split = Path(path).stem not in ("metrics", "predictions")
    return rule + ("_extra_split" if extra_split else "")


def read_predictions(path: str | Path, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """A run's predictions file, every value present; a damaged one is set aside for the rule that remakes it."""
    probabilities = [f"probability_{name}" for name in (() if class_names is None else class_names)]
    return read_checked_csv(path, evaluation_rule(path), PREDICTION_COLUMNS + probabilities,
                            dtype={"name": str, "class_name": str})


def _aligned_predictions(paths: Sequence[Path], class_names: Sequence[str]
                         ) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """True labels and scores (class-1 probabilities for two classes, else (N, K)) of each run, by source name."""
    frames = [read_predictions(path, class_names) for path in paths]
    reference = frames[0]["name"].astype(str).tolist()
    trues, scores = [], []
    for frame in frames:
        frame = frame.set_index(frame["name"].astype(str))
        if sorted(frame.index) != sorted(reference):
            return None
        frame = frame.loc[reference]
        if len(class_names) == 2:
            trues.append((frame["class_name"] == class_names[1]).to_numpy(np.int64))
            scores.append(frame[f"probability_{class_names[1]}"].to_numpy(np.float64))
        else:
            trues.append(frame["class_name"].map({name: k for k, name in enumerate(class_names)}).to_numpy(np.int64))
            scores.append(frame[[f"probability_{name}" for name in class_names]].to_numpy(np.float64))
    return trues, scores


def summarise_runs(metrics_paths: list[str | Path], runs_path: str | Path, summary_path: str | Path,
                   predictions_paths: list[str | Path] | None = None, n_resamples: int = N_RESAMPLES,
                   bootstrap_seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Write every run as a row (runs.csv) and per variant the mean, std and 95% intervals over seeds."""
    metrics_paths = [Path(path) for path in metrics_paths]
    if predictions_paths is None:
        predictions_paths = [path.with_name("predictions.csv") for path in metrics_paths]
    reports = [json.loads(path.read_text()) for path in metrics_paths]
    class_names = tuple(reports[0].get("class_names", CLASS_NAMES))
    names = metric_names(class_names)
    runs = pd.DataFrame([flatten_report(report, path) for report, path in zip(reports, metrics_paths)])
    runs["predictions_file"] = [str(path) for path in predictions_paths]
    runs = drop_single_mode(runs)
    keys = group_columns(runs)
    runs = runs.sort_values(["model", "kind", "trained_on", "survey", *keys[len(GROUP_COLUMNS):], "seed"])
    runs = runs.reset_index(drop=True)
    write_csv_atomic(runs_path, runs)

    rows = []
    for key, group in runs.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key))
        row["seeds"] = len(group)
        row["seed_list"] = " ".join(str(seed) for seed in sorted(group["seed"]))
        row["n_test"] = int(group["n_test"].iloc[0])
        for name in class_names:
            row[f"n_test_{name}"] = int(group[f"n_test_{name}"].iloc[0])
        # what choices among variants are made on (never the test metrics below)
        row["val_accuracy_mean"] = float(group["best_val_accuracy"].mean())
        aligned = [Path(path) for path in group["predictions_file"]]
        aligned = _aligned_predictions(aligned, class_names) if all(p.is_file() for p in aligned) else None
        if aligned is None:
            log.warning("%s: predictions missing or over different sources; no test-source interval", key)
            intervals = {}
        else:
            intervals = bootstrap_intervals(*aligned, class_names, n_resamples, CONFIDENCE, bootstrap_seed)
        for metric in names:
            values = group[metric].to_numpy(np.float64)
            row[f"{metric}_mean"] = float(np.mean(values))
            row[f"{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            interval = intervals.get(metric, {"low": math.nan, "high": math.nan})
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = interval["low"], interval["high"]
            seed_interval = bootstrap_mean(values, n_resamples, CONFIDENCE, bootstrap_seed)
            row[f"{metric}_seed_ci_low"], row[f"{metric}_seed_ci_high"] = seed_interval
        rows.append(row)
    summary = pd.DataFrame(rows)
    write_csv_atomic(summary_path, summary, float_format="%.4f")
    for row in summary.itertuples(index=False):
        log.info("%s %s %s->%s: accuracy %.3f +/- %.3f [%.3f, %.3f], AUROC %.3f +/- %.3f over %d seeds", row.model,
                 row.kind, row.trained_on, row.survey, row.accuracy_mean, row.accuracy_std, row.accuracy_ci_low,
                 row.accuracy_ci_high, row.auroc_mean, row.auroc_std, row.seeds)
    return summary
