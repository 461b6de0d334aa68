"""The published study before and after the train/test neighbour cleaning (tables/cleaning_effect.csv).

The published run keeps FRDEEP's split as released (``catalogue.neighbours.action: keep``); the cleaned
run (config/cleaned.yaml) drops the test member of every cross-split pair. Each variant's test accuracy
and AUROC, mean and std over seeds, is set beside the other run's with the number of test sources of
each, so a change can be read against the seed spread. The published numbers are read from the
committed ``metrics/summary.json`` (DVC's view of summary.csv) or from a ``summary.csv`` itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from rgmorph.files import write_csv_atomic

KEYS = ["model", "kind", "trained_on", "survey"]
NUMBERS = ["n_test", "seeds", "accuracy_mean", "accuracy_std", "auroc_mean", "auroc_std"]
RUNS = ("published", "cleaned")


def _row_from_keys(survey_key: str, model_key: str, metrics: dict) -> dict:
    """Undo scripts/dvc_metrics.py's keys: 'NVSS->FIRST' / 'tang2019-transfer-from-NVSS' (model names hold no '-')."""
    trained_on, _, survey = survey_key.partition("->")
    model, _, pretrained_on = model_key.partition("-transfer-from-")
    return {"model": model, "kind": "transfer" if pretrained_on else "scratch", "trained_on": trained_on,
            "survey": survey or trained_on, **metrics}


def read_summary(path: str | Path) -> pd.DataFrame:
    """One row per variant (KEYS and whichever NUMBERS it has) from a summary.csv or a DVC summary.json."""
    path = Path(path)
    if path.suffix == ".json":
        nested = json.loads(path.read_text())
        table = pd.DataFrame([_row_from_keys(survey_key, model_key, metrics)
                              for survey_key, models in nested.items() for model_key, metrics in models.items()])
    else:
        table = pd.read_csv(path)
    if "mode" in table.columns:  # transfer modes (transfer.modes): the published run has the paper's, 'frozen'
        table = table[table["mode"].fillna("").isin(["", "frozen"])]
    missing = [column for column in [*KEYS, "accuracy_mean", "auroc_mean"] if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; expected a summary table (tables/summary.csv) "
                         "or metrics/summary.json")
    repeated = table[table.duplicated(KEYS, keep=False)]
    if len(repeated):  # e.g. several transfer modes of one variant: the two runs could not be paired
        raise ValueError(f"{path}: more than one row per {KEYS}: {repeated[KEYS].drop_duplicates().to_dict('records')}")
    return table[[*KEYS, *[column for column in NUMBERS if column in table.columns]]]


def cleaning_effect(published: pd.DataFrame, cleaned: pd.DataFrame) -> pd.DataFrame:
    """Both runs' numbers side by side per variant (a variant only one run has keeps blanks for the other),
    and the change in mean accuracy and AUROC (cleaned minus published)."""
    sides = [table.set_index(KEYS).add_suffix(f"_{run}") for table, run in zip((published, cleaned), RUNS)]
    table = sides[0].join(sides[1], how="outer").reset_index()
    for metric in ("accuracy", "auroc"):
        table[f"{metric}_change"] = table[f"{metric}_mean_cleaned"] - table[f"{metric}_mean_published"]
    order = [f"{name}_{run}" for name in NUMBERS for run in RUNS]
    columns = [*KEYS, *[column for column in order if column in table.columns], "accuracy_change", "auroc_change"]
    return table[columns].sort_values(["kind", "survey", "model", "trained_on"]).reset_index(drop=True)


def write_cleaning_effect(published_path: str | Path, cleaned_path: str | Path, table_path: str | Path) -> pd.DataFrame:
    table = cleaning_effect(read_summary(published_path), read_summary(cleaned_path))
    write_csv_atomic(table_path, table, float_format="%.4f")
    return table
