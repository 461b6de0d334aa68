"""Write the small files that `dvc metrics` and `dvc plots` show, from the workflow's outputs.

    python scripts/dvc_metrics.py RESULTS_DIR OUT_DIR

Reads RESULTS_DIR/tables/summary.csv (the `summarise` rule) and every training history
RESULTS_DIR/models/**/history.csv (the `train` rule); writes, under OUT_DIR:

- summary.json: the numeric columns of summary.csv (test metrics, mean and spread over seeds),
  keyed by survey, then model;
- training.json: per run, the epochs run and the kept epoch (best on validation) with its
  training and validation numbers;
- loss/<survey>-<model>-seed<seed>.csv and accuracy/...: each run's training and validation
  loss (accuracy) per epoch, one file per run (`dvc plots` draws one plot per file).

Why a separate view: DVC reads metrics from JSON/YAML/TOML only (the tables are CSV), and a
directory of plots must hold nothing but plot files (the histories sit next to the
checkpoints). Nothing is recomputed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd

IDENTIFIERS = ("model", "kind", "pretrained_on", "mode", "trained_on", "survey", "seed_list")


def _present(value) -> bool:
    return not pd.isna(value) and str(value) != ""


def summary_key(row: dict) -> tuple[str, str]:
    survey = row["survey"]
    trained_on = row.get("trained_on", survey)
    survey_key = survey if not _present(trained_on) or trained_on == survey else f"{trained_on}->{survey}"
    model_key = row["model"]
    if _present(row.get("kind")) and row["kind"] != "scratch":
        model_key += f"-{row['kind']}"
    if _present(row.get("pretrained_on")):
        model_key += f"-from-{row['pretrained_on']}"
    if _present(row.get("mode")) and row["mode"] != "frozen":  # frozen keeps the keys of before transfer modes
        model_key += f"-{row['mode']}"
    return survey_key, model_key


def summary_metrics(summary: pd.DataFrame) -> dict:
    numeric = [name for name in summary.select_dtypes("number").columns if name not in IDENTIFIERS]
    metrics: dict = {}
    for row in summary.to_dict("records"):
        survey_key, model_key = summary_key(row)
        metrics.setdefault(survey_key, {})[model_key] = {
            name: row[name].item() if hasattr(row[name], "item") else row[name]
            for name in numeric if _present(row[name])
        }
    return metrics


CURVES = {"loss": ["train_loss", "val_loss"], "accuracy": ["train_accuracy", "val_accuracy"]}


def training_metrics(models_dir: Path, out: Path) -> dict:
    metrics: dict = {}
    for source in sorted(models_dir.glob("**/history.csv")):
        parts = source.parent.relative_to(models_dir).parts  # (survey, model, 'seed0')
        history = pd.read_csv(source)
        kept = history[history["best"].astype(bool)].iloc[-1]
        node = metrics
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = {
            "epochs": int(history["epoch"].max()),
            "best_epoch": int(kept["epoch"]),
            "best_val_loss": float(kept["val_loss"]),
            "best_val_accuracy": float(kept["val_accuracy"]),
            "train_loss": float(kept["train_loss"]),
            "train_accuracy": float(kept["train_accuracy"]),
        }
        for curve, columns in CURVES.items():
            history[["epoch", *columns]].to_csv(out / curve / f"{'-'.join(parts)}.csv", index=False)
    return metrics


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def main(results_dir: str, out_dir: str) -> None:
    results, out = Path(results_dir), Path(out_dir)
    for curve in CURVES:
        shutil.rmtree(out / curve, ignore_errors=True)  # a run that is gone must not linger as a line
        (out / curve).mkdir(parents=True)
    write_json(out / "summary.json", summary_metrics(pd.read_csv(results / "tables" / "summary.csv")))
    write_json(out / "training.json", training_metrics(results / "models", out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
