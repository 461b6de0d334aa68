"""A check of a classify study on real data: does its OOD score single out sources unlike the training data?

The reference is the training study's held-out test sources (``split == test`` in its
``catalogue/sources.csv``, with the labels written there), found by name in ``classifications.csv``.
Each group is a selection of rows of ``classifications.csv`` by carried columns, as ``catalogue.select``
selects (e.g. MiraBest's uncertain FRI/FRII, or its hybrids). Per row of the check table (the reference,
then each group; only classified sources count):

* ``n``, and ``ood_flag_rate``: the fraction flagged out of distribution;
* ``auroc_ood_score`` and ``auroc_entropy``: the AUROC of the energy score and of the predictive entropy
  with the group as positives and the reference as negatives (0.5: no separation), each with a 95%
  percentile-bootstrap interval resampling the group and the reference apart;
* ``agreement``: the fraction whose predicted class is the hidden label (the label column; rows whose
  label is not a class name, e.g. hybrids, give none), over ``n_labelled`` rows, with a Wilson interval.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from scipy import stats
from sklearn.metrics import roc_auc_score

from rgmorph.classify import CLASSIFIED
from rgmorph.files import write_csv_atomic

log = logging.getLogger(__name__)

REFERENCE = "reference"
SCORES = ("ood_score", "entropy")  # higher: less like the training data
CONFIDENCE = 0.95
N_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CHECK_COLUMNS = ["group", "n", "ood_flag_rate",
                 *[f"auroc_{score}{end}" for score in SCORES for end in ("", "_low", "_high")],
                 "n_labelled", "agreement", "agreement_low", "agreement_high"]


class CheckError(ValueError):
    """A check that cannot be made as configured; the message names the config key."""


def read_classifications(path: str | Path) -> pd.DataFrame:
    """``classifications.csv`` with carried columns as text (selected as text) and the scores as numbers."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in SCORES:
        table[column] = pd.to_numeric(table[column].replace("", np.nan))
    table["ood_flag"] = table["ood_flag"].str.strip().str.lower() == "true"
    return table


def class_names(table: pd.DataFrame) -> list[str]:
    """The class names, read from the ``prob_<class>`` columns."""
    return [column[5:] for column in table.columns if column.startswith("prob_") and not column.endswith("_std")]


def reference_rows(table: pd.DataFrame, sources: pd.DataFrame, split: str = "test") -> tuple[pd.DataFrame, pd.Series]:
    """The rows of ``table`` naming a ``split`` source of the training catalogue, and their classes there."""
    held_out = sources[sources["split"] == split].set_index("name")["class_name"]
    rows = table[table["name"].isin(held_out.index)]
    if rows.empty:
        raise CheckError(f"none of the {len(held_out)} '{split}' sources of the training catalogue is in the "
                         "classified table: classify the training study's catalogue (classify.catalogue) or change "
                         "classify.check.reference_split")
    if len(rows) < len(held_out):
        log.warning("%d of the %d '%s' sources have no classified row", len(held_out) - len(rows),
                    len(held_out), split)
    return rows, pd.Series(held_out.reindex(rows["name"]).to_numpy(), index=rows.index)


def select_group(table: pd.DataFrame, group: str, selection: Mapping[str, Sequence]) -> pd.DataFrame:
    """The rows whose columns each hold one of the listed values (compared as stripped text)."""
    selected = table
    for column, allowed in selection.items():
        if column not in table.columns:
            raise CheckError(f"classify.check.groups.{group} selects on column {column!r}, which the classified "
                             f"table lacks (it has {list(table.columns)}); carry it with classify.catalogue.carry")
        selected = selected[selected[column].str.strip().isin([str(value) for value in allowed])]
    return selected


def auroc(reference: np.ndarray, group: np.ndarray) -> float:
    """AUROC of a score with the group as positives and the reference as negatives."""
    labels = np.r_[np.zeros(len(reference)), np.ones(len(group))]
    return float(roc_auc_score(labels, np.r_[reference, group]))


def auroc_interval(reference: np.ndarray, group: np.ndarray, n_resamples: int = N_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``auroc``, the group and the reference resampled apart."""
    with sklearn.config_context(skip_parameter_validation=True):
        result = stats.bootstrap((reference, group), auroc, paired=False, vectorized=False,
                                 n_resamples=n_resamples, confidence_level=CONFIDENCE, method="percentile",
                                 rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def agreement(predicted: pd.Series, labels: pd.Series, classes: Sequence[str]) -> dict:
    """How often the predicted class is the label, over rows labelled with a class name; Wilson interval."""
    labelled = labels.isin(classes).to_numpy()
    n = int(labelled.sum())
    if n == 0:
        return {"n_labelled": 0, "agreement": math.nan, "agreement_low": math.nan, "agreement_high": math.nan}
    agreed = int((predicted.to_numpy()[labelled] == labels.to_numpy()[labelled]).sum())
    interval = stats.binomtest(agreed, n).proportion_ci(CONFIDENCE, method="wilson")
    return {"n_labelled": n, "agreement": agreed / n, "agreement_low": float(interval.low),
            "agreement_high": float(interval.high)}


def check_row(group: str, rows: pd.DataFrame, labels: pd.Series, reference: pd.DataFrame | None,
              classes: Sequence[str], n_resamples: int, seed: int) -> dict:
    """One row of the check table; ``reference`` None for the reference itself (no AUROC)."""
    row = {"group": group, "n": len(rows), "ood_flag_rate": float(rows["ood_flag"].mean()) if len(rows) else math.nan}
    for score in SCORES:
        values = (math.nan, math.nan, math.nan)
        if reference is not None and len(rows):
            negatives, positives = reference[score].to_numpy(float), rows[score].to_numpy(float)
            values = (auroc(negatives, positives), *auroc_interval(negatives, positives, n_resamples, seed))
        row.update(zip((f"auroc_{score}", f"auroc_{score}_low", f"auroc_{score}_high"), values))
    return {**row, **agreement(rows["predicted_class"], labels, classes)}


def ood_check(table: pd.DataFrame, sources: pd.DataFrame, groups: Mapping[str, Mapping[str, Sequence]],
              label_column: str, reference_split: str = "test", n_resamples: int = N_RESAMPLES,
              seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """The check table (``CHECK_COLUMNS``): the reference row, then one row per group, in config order."""
    if label_column not in table.columns:
        raise CheckError(f"classify.check.label_column {label_column!r} is not a column of the classified table "
                         f"(it has {list(table.columns)}); carry it with classify.catalogue.carry")
    classes = class_names(table)
    classified = table[table["status"] == CLASSIFIED]
    reference, reference_labels = reference_rows(classified, sources, reference_split)
    rows = [check_row(REFERENCE, reference, reference_labels, None, classes, n_resamples, seed)]
    for group, selection in groups.items():
        selected = select_group(classified, group, selection)
        if selected.empty:
            log.warning("classify.check.groups.%s selects no classified source", group)
        rows.append(check_row(group, selected, selected[label_column].str.strip(), reference, classes,
                              n_resamples, seed))
    return pd.DataFrame(rows, columns=CHECK_COLUMNS)


def write_ood_check(classifications: str | Path, sources: str | Path, output: str | Path, **settings) -> pd.DataFrame:
    """``ood_check`` of a classified table against the training catalogue, written atomically."""
    training = pd.read_csv(sources, dtype=str, keep_default_na=False)
    check = ood_check(read_classifications(classifications), training, **settings)
    write_csv_atomic(output, check)
    return check
