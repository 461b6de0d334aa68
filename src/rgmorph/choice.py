"""A setting chosen on validation, never on test (e.g. tables/circular_mask.csv).

One short study per choice of the setting, each in its own results_dir and each scoring its runs on
their own validation hold-out too (``evaluate.extra_splits: [validation]``). Per choice and variant:
the validation accuracy (tables/summary_validation.csv) and cross-entropy loss (from each run's
predictions_validation.csv), mean and std over seeds, and which choice is picked on them: the highest
accuracy, then the lowest loss, then the first choice listed (the default). Beside it, for reading
only, the test accuracy and AUROC (tables/summary.csv) and their change from the first choice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from rgmorph.files import write_csv_atomic
from rgmorph.layout import Run

log = logging.getLogger(__name__)
KEYS = ["model", "kind", "trained_on", "survey"]
SMALLEST_PROBABILITY = 1e-12  # a confident wrong answer costs a finite loss


def cross_entropy(predictions: pd.DataFrame) -> float:
    """Mean -log p(true class) over a predictions file's sources (probability_<class> columns in label order)."""
    probabilities = predictions[[column for column in predictions.columns if column.startswith("probability_")]]
    true = probabilities.to_numpy()[np.arange(len(predictions)), predictions["label"].to_numpy(int)]
    return float(-np.mean(np.log(np.clip(true, SMALLEST_PROBABILITY, 1.0))))


def validation_loss(results_dir: str | Path) -> pd.DataFrame:
    """Per variant (KEYS): val_loss_mean and val_loss_std over its seeds' predictions_validation.csv."""
    rows = []
    for path in sorted(Path(results_dir).glob("evaluation/**/predictions_validation.csv")):
        run = Run.from_path(path)
        rows.append({"model": run.model, "kind": run.kind, "trained_on": run.pretrained_on or run.survey,
                     "survey": run.survey, "loss": cross_entropy(pd.read_csv(path))})
    if not rows:
        raise FileNotFoundError(f"{results_dir}: no evaluation/**/predictions_validation.csv; run the study with "
                                "evaluate.extra_splits: [validation]")
    loss = pd.DataFrame(rows).groupby(KEYS)["loss"]
    return pd.DataFrame({"val_loss_mean": loss.mean(), "val_loss_std": loss.std(ddof=1).fillna(0.0)}).reset_index()


def _summary(table: pd.DataFrame, prefix: str, metrics: list[str]) -> pd.DataFrame:
    columns = {"n_test": f"n_{prefix}", **{f"{metric}_{stat}": f"{prefix}_{metric}_{stat}"
                                           for metric in metrics for stat in ("mean", "std")}}
    return table[[*KEYS, *columns]].rename(columns=columns)


def choice_rows(choice: str, results_dir: str | Path) -> pd.DataFrame:
    """One choice's study: per variant its validation numbers and, beside them, its test numbers."""
    tables = Path(results_dir) / "tables"
    validation = _summary(pd.read_csv(tables / "summary_validation.csv"), "val", ["accuracy"])
    summary = pd.read_csv(tables / "summary.csv")
    recalls = [column[:-len("_mean")] for column in summary.columns
               if column.startswith("recall_") and column.endswith("_mean")]  # which class a choice moves
    test = _summary(summary, "test", ["accuracy", "auroc", *recalls])
    rows = validation.merge(validation_loss(results_dir), on=KEYS, how="left").merge(test, on=KEYS, how="left")
    if (tables / "ensembles.csv").is_file():
        ensembles = pd.read_csv(tables / "ensembles.csv")
        ensembles = ensembles[[*KEYS, "accuracy", "accuracy_ci_low", "accuracy_ci_high"]].rename(
            columns=lambda column: column if column in KEYS else f"test_ensemble_{column}")
        rows = rows.merge(ensembles, on=KEYS, how="left")
    return rows.assign(choice=choice)


def pick_on_validation(rows: pd.DataFrame, order: list[str], per: list[str] = KEYS) -> pd.Series:
    """True for the choice picked per ``per`` group (a variant by default): highest validation accuracy, lowest
    loss, then first in ``order``."""
    ranked = rows.assign(rank=rows["choice"].map(order.index)).sort_values(
        ["val_accuracy_mean", "val_loss_mean", "rank"], ascending=[False, True, True])
    picked = ranked.groupby(per, sort=False).head(1).index
    return rows.index.isin(picked)


def _tabulated_rows(choice: str, folder: str | Path, previous: pd.DataFrame | None, setting: str) -> pd.DataFrame:
    """A choice's rows: from its study, or, where the study's per-run predictions are not in this checkout (a
    clone holds the committed tables only), from the table this one replaces, which was made from them."""
    if previous is not None and not any(Path(folder).glob("evaluation/**/predictions_validation.csv")):
        kept = previous[previous[setting] == choice]
        if len(kept):
            log.info("%s %s: rows from the previous table (no per-run predictions here)", setting, choice)
            derived = ["picked_on_validation", *[c for c in kept.columns if c.startswith("test_accuracy_change_vs_")]]
            return kept.drop(columns=derived).rename(columns={setting: "choice"}).reset_index(drop=True)
    return choice_rows(choice, folder)


def choice_table(results_dirs: Mapping[str, str | Path], setting: str = "choice",
                 across_models: bool = False, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every choice of every variant (one row each), the pick marked, the test change from the first choice.
    ``across_models``: a choice may change the network (an ablation's D_N CNN against the Tang CNN), so one
    pick per survey over every model, and the change is from the first choice's row of the same survey.
    ``previous``: the table this one replaces, for the choices whose studies left only their tables here."""
    order = list(results_dirs)
    per = [key for key in KEYS if key != "model"] if across_models else KEYS
    rows = pd.concat([_tabulated_rows(choice, folder, previous, setting) for choice, folder in results_dirs.items()],
                     ignore_index=True)
    rows["picked_on_validation"] = pick_on_validation(rows, order, per)
    first = rows[rows["choice"] == order[0]].set_index(per)
    if across_models and first.index.duplicated().any():
        raise ValueError(f"choice {order[0]!r} trains several models: the change from it is ambiguous across models")
    baseline = rows.set_index(per).index.map(first["test_accuracy_mean"])
    rows[f"test_accuracy_change_vs_{order[0]}"] = rows["test_accuracy_mean"].to_numpy() - np.asarray(baseline, float)
    rows = rows.rename(columns={"choice": setting})
    leading = [*KEYS, setting, "picked_on_validation"]
    sort_keys = [*per, "rank", *(["model"] if across_models else [])]
    rows = rows.assign(rank=rows[setting].map(order.index)).sort_values(sort_keys).drop(columns="rank")
    return rows[[*leading, *[column for column in rows.columns if column not in leading]]].reset_index(drop=True)


def write_choice_table(results_dirs: Mapping[str, str | Path], table_path: str | Path,
                       setting: str = "choice", across_models: bool = False) -> pd.DataFrame:
    """Write the table; rows of choices whose studies left only their tables come from the one it replaces."""
    previous = pd.read_csv(table_path, keep_default_na=False, na_values=[""]) if Path(table_path).is_file() else None
    table = choice_table(results_dirs, setting, across_models, previous)
    write_csv_atomic(table_path, table, float_format="%.4f")
    return table
