"""Fair transfer: each transfer mode against training from scratch and against the paper's frozen mode.

Per model and direction (source -> target survey), one row per setting: ``scratch`` (trained from
scratch on the target) and each transfer mode (rgmorph.layout.TRANSFER_MODES). Columns: test
accuracy and AUROC, mean and sample std over seeds; then, per reference setting (scratch, frozen),
the paired per-seed difference setting - reference: its mean over the seeds both have, the 95%
paired t interval of that mean and the paired t-test's p (scipy.stats.ttest_rel). Seeds pair
because every mode fine-tunes the same seed's pre-trained network, for the same epochs, with the
same validation selection; a scratch seed is the network its transfer runs started from on the
other survey, trained with the same seed on the target. A t interval, not a bootstrap: with a
handful of seeds a bootstrap of the seed values has too few distinct resamples to cover 95%.
(Per-source paired bootstraps of every pair of variants are in tables/paired_comparisons.csv.)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rgmorph.files import write_csv_atomic
from rgmorph.layout import DEFAULT_MODE, TRANSFER_MODES

SCRATCH = "scratch"
SETTINGS = (SCRATCH, *TRANSFER_MODES)
REFERENCES = (SCRATCH, DEFAULT_MODE)
METRICS = ("accuracy", "auroc")
CONFIDENCE = 0.95
KEYS = ["model", "source", "target", "setting"]


def columns() -> list[str]:
    spread = [f"{metric}_{part}" for metric in METRICS for part in ("mean", "std")]
    paired = [f"{metric}_vs_{reference}_{part}" for reference in REFERENCES for metric in METRICS
              for part in ("diff", "ci_low", "ci_high", "p")]
    return KEYS + ["seeds", "seed_list"] + spread + [f"pairs_vs_{reference}" for reference in REFERENCES] + paired


def read_runs(runs_csv: str | Path) -> pd.DataFrame:
    """runs.csv with a ``setting`` column: 'scratch' or the transfer mode (tables without modes: 'frozen')."""
    runs = pd.read_csv(runs_csv, keep_default_na=False, na_values={"accuracy": [""], "auroc": [""]},
                       dtype={"model": str, "kind": str, "pretrained_on": str, "trained_on": str, "survey": str,
                              "mode": str})
    mode = runs["mode"] if "mode" in runs.columns else pd.Series("", index=runs.index)
    transfer = runs["kind"] == "transfer"
    runs["setting"] = np.where(transfer, mode.replace("", DEFAULT_MODE), SCRATCH)
    return runs


def directions(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, source, target) of every transfer variant, in a stable order."""
    transfer = runs[runs["kind"] == "transfer"]
    return sorted(set(zip(transfer["model"], transfer["pretrained_on"], transfer["survey"])))


def per_seed(runs: pd.DataFrame, model: str, source: str, target: str) -> dict[str, pd.DataFrame]:
    """{setting: its runs' metrics indexed by seed} of one direction; scratch is trained and tested on the target."""
    scratch = (runs["kind"] == "scratch") & (runs["trained_on"] == target)
    transfer = (runs["kind"] == "transfer") & (runs["pretrained_on"] == source)
    chosen = runs[(runs["model"] == model) & (runs["survey"] == target) & (scratch | transfer)]
    return {setting: group.set_index("seed")[list(METRICS)].sort_index()
            for setting, group in chosen.groupby("setting")}


def paired_difference(values: pd.Series, reference: pd.Series) -> dict:
    """Mean of values - reference over the seeds both have, its 95% paired t interval and p."""
    both = pd.concat([values, reference], axis=1, join="inner").dropna()
    difference = {"diff": float((both.iloc[:, 0] - both.iloc[:, 1]).mean()) if len(both) else math.nan,
                  "ci_low": math.nan, "ci_high": math.nan, "p": math.nan, "pairs": len(both)}
    if len(both) >= 2 and (both.iloc[:, 0] - both.iloc[:, 1]).std() > 0:  # no interval from one seed or no spread
        test = stats.ttest_rel(both.iloc[:, 0], both.iloc[:, 1])
        interval = test.confidence_interval(CONFIDENCE)
        difference.update(ci_low=float(interval.low), ci_high=float(interval.high), p=float(test.pvalue))
    return difference


def setting_row(settings: dict[str, pd.DataFrame], setting: str) -> dict:
    """One setting's spread over seeds and its paired differences against each reference setting."""
    values = settings[setting]
    row = {"seeds": len(values), "seed_list": " ".join(str(seed) for seed in values.index)}
    for metric in METRICS:
        row[f"{metric}_mean"] = float(values[metric].mean())
        row[f"{metric}_std"] = float(values[metric].std(ddof=1)) if len(values) > 1 else 0.0
    for reference in REFERENCES:
        if reference == setting or reference not in settings:
            row[f"pairs_vs_{reference}"] = 0
            continue
        for metric in METRICS:
            difference = paired_difference(values[metric], settings[reference][metric])
            row[f"pairs_vs_{reference}"] = difference.pop("pairs")
            row |= {f"{metric}_vs_{reference}_{part}": value for part, value in difference.items()}
    return row


def transfer_modes_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Rows per model, direction and setting (scratch first, then the modes in TRANSFER_MODES order)."""
    rows = []
    for model, source, target in directions(runs):
        settings = per_seed(runs, model, source, target)
        for setting in (name for name in SETTINGS if name in settings):
            keys = {"model": model, "source": source, "target": target, "setting": setting}
            rows.append(keys | setting_row(settings, setting))
    return pd.DataFrame(rows, columns=columns())


def write_transfer_modes_table(runs_csv: str | Path, table_path: str | Path) -> pd.DataFrame:
    table = transfer_modes_table(read_runs(runs_csv))
    write_csv_atomic(table_path, table, float_format="%.4f")
    return table
