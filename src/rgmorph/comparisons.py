"""Paired comparisons of the variants tested on the same sources: is one model really better?

For every pair of variants (a ``GROUP_COLUMNS`` key of runs.csv) evaluated on the same survey and
the same test sources, each variant is summarised by its seed ensemble (the mean over seeds of the
class probabilities of each source; the prediction is the argmax, or for two classes class 1 when
its probability is >= 0.5, as in ``metrics.scalar_metrics``). Then:

* a paired percentile bootstrap of the difference A - B in accuracy and AUROC: one draw of test
  sources serves both models, so the interval holds only the part of the test-set noise that does
  not cancel between them (the two models see the same hard and easy sources);
* McNemar's exact test on the ensembles' right/wrong per source (b: A right and B wrong, c: A wrong
  and B right; two-sided binomial p of b among b + c at 1/2), Holm-corrected over the pairs of a survey.

A is the variant with the higher ensemble accuracy, so every difference in accuracy is >= 0.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from rgmorph.evaluate import CONFIDENCE, GROUP_COLUMNS, _aligned_predictions, group_columns, read_predictions
from rgmorph.files import write_csv_atomic
from rgmorph.layout import Variant
from rgmorph.metrics import (CLASS_NAMES, _percentile_bootstrap, bootstrap_intervals, bootstrap_mean, metric_names,
                             predicted_classes, resampled_scalar_metrics, scalar_metrics)

log = logging.getLogger(__name__)

N_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
ALPHA = 0.05
COLUMNS = ["survey", "variant_a", "variant_b", "n_sources", "seeds_a", "seeds_b",
           "accuracy_a", "accuracy_b", "accuracy_diff", "accuracy_diff_ci_low", "accuracy_diff_ci_high",
           "auroc_a", "auroc_b", "auroc_diff", "auroc_diff_ci_low", "auroc_diff_ci_high",
           "mcnemar_b", "mcnemar_c", "mcnemar_p", "mcnemar_p_holm", "significant"]


def accuracy_auroc(true: np.ndarray, scores: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Accuracy and AUROC as ``metrics.scalar_metrics`` gives them: (2,) for the sample, or (2, R) for the
    resamples ``true[i], scores[i]`` of the rows i of ``index`` (R, N).

    AUROC is that of class 1 for two classes, else the one-vs-rest macro mean (NaN where a class
    is absent from ``true``).
    """
    class_names = CLASS_NAMES if scores.ndim == 1 else [str(k) for k in range(scores.shape[1])]
    names = metric_names(class_names)
    rows = np.arange(true.size)[None] if index is None else index
    values = resampled_scalar_metrics(true, scores, rows, class_names)[[names.index("accuracy"), names.index("auroc")]]
    return values[:, 0] if index is None else values


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """(b, c, exact two-sided p) of McNemar's test; p = 1 when the models never disagree."""
    b = int(np.sum(correct_a & ~correct_b))
    c = int(np.sum(~correct_a & correct_b))
    return b, c, 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (controls the family-wise error)."""
    p_values = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p_values, kind="stable")
    scaled = (len(p_values) - np.arange(len(p_values))) * p_values[order]
    adjusted = np.empty_like(p_values)
    # Running maximum: the procedure stops at the first failure, so no later p may fall below it.
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def variant_label(key: tuple, columns=GROUP_COLUMNS) -> str:
    """Readable name of a ``columns`` key (GROUP_COLUMNS, and the transfer mode where runs.csv has one); a scratch
    model tested on another survey says where it was trained."""
    row = dict(zip(columns, key))
    label = Variant.from_row(row).label
    if not row["pretrained_on"] and row["trained_on"] not in ("", row["survey"]):
        label += f" (trained on {row['trained_on']})"
    return label


def seed_ensemble(paths: list[Path]) -> dict | None:
    """Source names, labels and seed-mean scores of one variant; None if its seeds scored different sources.

    Scores are class-1 probabilities for two classes, else (N, K) (``_aligned_predictions``); the
    mean of class-1 probabilities is the class-1 probability of the mean, so both decide alike.
    """
    first = read_predictions(paths[0])
    class_names = tuple(str(column)[len("probability_"):] for column in first.columns
                        if str(column).startswith("probability_"))
    aligned = _aligned_predictions(paths, class_names)
    if aligned is None or any(not np.array_equal(true, aligned[0][0]) for true in aligned[0]):
        return None
    return {"names": first["name"].astype(str).to_numpy(), "true": aligned[0][0],
            "scores": np.mean(aligned[1], axis=0), "seed_scores": aligned[1], "class_names": class_names,
            "seeds": len(paths)}


def read_runs(runs_csv_path: str | Path) -> pd.DataFrame:
    """runs.csv with its grouping columns as text (empty, not NaN, where a run has no transfer source)."""
    return pd.read_csv(runs_csv_path, keep_default_na=False, dtype={column: str for column in [*GROUP_COLUMNS, "mode"]})


def variant_ensembles(runs: pd.DataFrame, columns: list[str]) -> dict[tuple, dict]:
    """{variant key: its seed ensemble} for the variants of ``runs``; one whose seeds scored different sources is
    logged and left out."""
    ensembles = {}
    for key, group in runs.groupby(columns, sort=True):
        ensemble = seed_ensemble([Path(path) for path in group["predictions_file"]])
        if ensemble is None:
            log.warning("%s: seeds scored different sources; no seed ensemble", variant_label(key, columns))
        else:
            ensembles[key] = ensemble
    return ensembles


def compare_pair(a: dict, b: dict, n_resamples: int, seed: int) -> dict:
    """The table row of A against B (B already aligned to A's sources): metrics, paired bootstrap, McNemar."""
    true = a["true"]
    (accuracy_a, auroc_a), (accuracy_b, auroc_b) = accuracy_auroc(true, a["scores"]), accuracy_auroc(true, b["scores"])

    def difference(index: np.ndarray, axis: int = -1) -> np.ndarray:  # each resample of sources serves both models
        return accuracy_auroc(true, a["scores"], index) - accuracy_auroc(true, b["scores"], index)

    accuracy_ci, auroc_ci = _percentile_bootstrap(difference, np.arange(true.size), n_resamples, CONFIDENCE, seed)
    b_count, c_count, p = mcnemar(predicted_classes(a["scores"]) == true, predicted_classes(b["scores"]) == true)
    return {"n_sources": int(true.size), "seeds_a": a["seeds"], "seeds_b": b["seeds"],
            "accuracy_a": accuracy_a, "accuracy_b": accuracy_b, "accuracy_diff": accuracy_a - accuracy_b,
            "accuracy_diff_ci_low": accuracy_ci["low"], "accuracy_diff_ci_high": accuracy_ci["high"],
            "auroc_a": auroc_a, "auroc_b": auroc_b, "auroc_diff": auroc_a - auroc_b,
            "auroc_diff_ci_low": auroc_ci["low"], "auroc_diff_ci_high": auroc_ci["high"],
            "mcnemar_b": b_count, "mcnemar_c": c_count, "mcnemar_p": p}


def aligned_to(a: dict, b: dict) -> dict | None:
    """``b`` reordered to ``a``'s sources, or None when the two scored different sources or classes."""
    if a["class_names"] != b["class_names"] or sorted(a["names"]) != sorted(b["names"]):
        return None
    position = pd.Series(np.arange(len(b["names"])), index=b["names"])
    order = position.loc[a["names"]].to_numpy()
    if not np.array_equal(b["true"][order], a["true"]):
        raise ValueError("the same sources carry different labels in two variants' predictions")
    return {**b, "names": a["names"], "true": a["true"], "scores": b["scores"][order]}


def paired_comparisons(runs_csv_path: str | Path, out_csv_path: str | Path, n_resamples: int = N_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """Compare every pair of variants tested on the same survey and sources; write and return the table.

    ``significant`` is True when the 95% paired-bootstrap interval of the accuracy difference
    excludes 0 AND the Holm-adjusted McNemar p (over the pairs of that survey) is < 0.05: the
    interval alone ignores how many pairs are tested, McNemar alone ignores the effect's size.
    Pairs over different source sets (or variants whose seeds disagree on sources) are logged and skipped.
    """
    runs = read_runs(runs_csv_path)
    columns = group_columns(runs)
    rows = []
    for survey, survey_runs in runs.groupby("survey", sort=True):
        ensembles = variant_ensembles(survey_runs, columns)
        survey_rows = []
        for key_a, key_b in itertools.combinations(ensembles, 2):
            a, b = ensembles[key_a], aligned_to(ensembles[key_a], ensembles[key_b])
            if b is None:
                log.warning("%s vs %s: different test sources or classes; not compared", variant_label(key_a, columns),
                            variant_label(key_b, columns))
                continue
            if accuracy_auroc(a["true"], b["scores"])[0] > accuracy_auroc(a["true"], a["scores"])[0]:
                (key_a, a), (key_b, b) = (key_b, b), (key_a, a)  # A is the more accurate
            row = {"survey": survey, "variant_a": variant_label(key_a, columns), "variant_b": variant_label(key_b, columns)}
            survey_rows.append({**row, **compare_pair(a, b, n_resamples, seed)})
        holm_p = holm([row["mcnemar_p"] for row in survey_rows])
        for row, p in zip(survey_rows, holm_p):
            row["mcnemar_p_holm"] = float(p)
            row["significant"] = bool((row["accuracy_diff_ci_low"] > 0 or row["accuracy_diff_ci_high"] < 0)
                                      and p < ALPHA)
        rows += survey_rows
    table = pd.DataFrame(rows, columns=COLUMNS)
    write_csv_atomic(out_csv_path, table)
    log.info("%d paired comparisons, %d significant", len(table), int(table["significant"].sum()))
    return table


def ensemble_name(model: str) -> str:
    """The declared variant of a model's seed ensemble, as tables and the README name it."""
    return f"ensemble({model})"


def seed_ensemble_row(ensemble: dict, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict:
    """Every scalar metric of one seed ensemble on its sources, with its 95% percentile-bootstrap interval over
    the sources (the ensemble is one classifier: there is no spread over seeds to report)."""
    class_names = list(ensemble["class_names"])
    values = scalar_metrics(ensemble["true"], ensemble["scores"], class_names)
    intervals = bootstrap_intervals([ensemble["true"]], [ensemble["scores"]], class_names, n_resamples,
                                    CONFIDENCE, seed)
    row = {"seeds": ensemble["seeds"], "n_sources": int(ensemble["true"].size)}
    for name in metric_names(class_names):
        row.update({name: values[name], f"{name}_ci_low": intervals[name]["low"],
                    f"{name}_ci_high": intervals[name]["high"]})
    return {**row, **_gain_over_seeds(ensemble, n_resamples, seed)}


def _gain_over_seeds(ensemble: dict, n_resamples: int, seed: int) -> dict:
    """The ensemble's accuracy minus its seeds' mean accuracy, paired by source: per source, the ensemble
    right (1) or wrong (0) less the fraction of seeds right; 95% bootstrap interval over sources."""
    true = ensemble["true"]
    seeds_right = np.mean([predicted_classes(scores) == true for scores in ensemble["seed_scores"]], axis=0)
    gain = (predicted_classes(ensemble["scores"]) == true) - seeds_right
    low, high = bootstrap_mean(gain, n_resamples, CONFIDENCE, seed)
    return {"accuracy_minus_seed_mean": float(gain.mean()), "accuracy_minus_seed_mean_ci_low": low,
            "accuracy_minus_seed_mean_ci_high": high}


def seed_ensembles(runs_csv_path: str | Path, out_csv_path: str | Path, n_resamples: int = N_RESAMPLES,
                   seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """tables/ensembles.csv: each variant of runs.csv as the declared variant ``ensemble(<model>)``, the mean of
    its seeds' class probabilities per source (the classifier paired_comparisons compares), scored on the
    same test sources as its seeds; write and return the table."""
    runs = read_runs(runs_csv_path)
    columns = group_columns(runs)
    rows = []
    for key, ensemble in variant_ensembles(runs, columns).items():
        row = dict(zip(columns, key))
        rows.append({**row, "variant": ensemble_name(row["model"]), **seed_ensemble_row(ensemble, n_resamples, seed)})
    table = pd.DataFrame(rows)
    write_csv_atomic(out_csv_path, table)
    log.info("%d seed ensembles", len(table))
    return table
