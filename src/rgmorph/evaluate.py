"""Stage 6: score each trained model once on the test split, then summarise over seeds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgmorph.io import sha256_file, write_csv_atomic, write_json_atomic
from rgmorph.metrics import binary_classification_report
from rgmorph.preprocess import load_dataset
from rgmorph.train import load_checkpoint, predict_logits

log = logging.getLogger(__name__)

# Columns of the per-run table that are averaged over seeds.
SUMMARY_METRICS = ["accuracy", "auroc", "precision_FRI", "recall_FRI", "f1_FRI",
                   "precision_FRII", "recall_FRII", "f1_FRII", "tpr0_FRII", "tpr10_FRII", "ece"]


def evaluate_checkpoint(checkpoint_path: str | Path, dataset_path: str | Path, metrics_path: str | Path,
                        predictions_path: str | Path) -> dict:
    model, checkpoint = load_checkpoint(checkpoint_path)
    dataset = load_dataset(dataset_path)
    if dataset["survey"] != checkpoint["survey"]:
        log.info("cross-survey evaluation: model trained on %s, tested on %s", checkpoint["survey"], dataset["survey"])
    test = np.flatnonzero(dataset["split"] == "test")
    images = torch.from_numpy(dataset["images"][test]).unsqueeze(1)
    probabilities = torch.softmax(predict_logits(model, images), dim=1).numpy().astype(np.float64)
    labels = dataset["labels"][test]
    report = binary_classification_report(labels, probabilities[:, 1], class_names=tuple(dataset["class_names"]))
    report["run"] = {
        "model": checkpoint["model_name"], "trained_on": checkpoint["survey"], "survey": dataset["survey"],
        "seed": checkpoint["seed"], "parameters": checkpoint["parameters"], "best_epoch": checkpoint["best_epoch"],
        "best_val_accuracy": checkpoint["best_val_accuracy"], "best_val_loss": checkpoint["best_val_loss"],
        "checkpoint": str(checkpoint_path), "checkpoint_sha256": sha256_file(checkpoint_path),
        "dataset": str(dataset_path), "dataset_sha256": sha256_file(dataset_path),
        "environment": checkpoint["environment"],
    }
    predictions = pd.DataFrame({
        "name": dataset["names"][test], "label": labels,
        "class_name": [dataset["class_names"][label] for label in labels],
        **{f"probability_{name}": probabilities[:, k] for k, name in enumerate(dataset["class_names"])},
        "predicted": probabilities.argmax(1),
    })
    write_csv_atomic(predictions_path, predictions)
    write_json_atomic(metrics_path, report)
    log.info("%s %s seed %s: test accuracy %.3f, AUROC %.3f on %d sources", checkpoint["model_name"],
             dataset["survey"], checkpoint["seed"], report["accuracy"], report["auroc"], len(test))
    return report


def flatten_report(report: dict) -> dict:
    """One row of the tidy per-run table."""
    row = {"model": report["run"]["model"], "survey": report["run"]["survey"],
           "trained_on": report["run"]["trained_on"], "seed": report["run"]["seed"],
           "accuracy": report["accuracy"], "auroc": report["auroc"], "ece": report["ece"],
           "n_test": report["n_samples"], "best_epoch": report["run"]["best_epoch"],
           "best_val_accuracy": report["run"]["best_val_accuracy"]}
    for name, values in report["per_class"].items():
        for metric in ("precision", "recall", "f1"):
            row[f"{metric}_{name}"] = values[metric]
    for key, value in report.items():
        if key.startswith("tpr"):
            row[key] = value
    return row


def summarise_runs(metrics_paths: list[str | Path], runs_path: str | Path, summary_path: str | Path) -> pd.DataFrame:
    """Write every run as a row, and the mean and (sample) std over seeds per model and survey."""
    runs = pd.DataFrame([flatten_report(json.loads(Path(path).read_text())) for path in metrics_paths])
    runs = runs.sort_values(["model", "trained_on", "survey", "seed"]).reset_index(drop=True)
    write_csv_atomic(runs_path, runs)
    grouped = runs.groupby(["model", "trained_on", "survey"], sort=True)
    summary = grouped.size().rename("seeds").to_frame()
    for metric in SUMMARY_METRICS:
        summary[f"{metric}_mean"] = grouped[metric].mean()
        summary[f"{metric}_std"] = grouped[metric].std(ddof=1).fillna(0.0)
    summary = summary.reset_index()
    write_csv_atomic(summary_path, summary, float_format="%.4f")
    for row in summary.itertuples(index=False):
        log.info("%s %s: accuracy %.3f +/- %.3f, AUROC %.3f +/- %.3f over %d seeds", row.model, row.survey,
                 row.accuracy_mean, row.accuracy_std, row.auroc_mean, row.auroc_std, row.seeds)
    return summary
