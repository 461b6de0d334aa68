"""Spread across train/test splits: is one split representative of the sample?

FRDEEP's published split puts validation accuracy 6-10 points below test accuracy for every model
(issue 13). ``make splits`` repeats one study on seeded stratified splits of the whole sample
(config/splits.yaml, one study per split seed, each in ``<splits.results_dir>/seed<k>``); this module
reads each study's ``tables/summary.csv`` (test), ``tables/summary_validation.csv`` (each run's own
validation hold-out) and, where the study has it, ``tables/ensembles.csv`` (``test_ensemble_accuracy``: the
declared variant ``ensemble(<model>)``, the mean of the seeds' probabilities) and writes
``tables/split_spread.csv``, one row per variant and:

- ``scope = split``: one split study, its numbers the means over training seeds (as in summary.csv);
- ``scope = across_splits``: over those split means, the mean (in ``test_accuracy`` etc.), the sample
  standard deviation (ddof=1, as over seeds in summary.csv; empty with one split), min and max;
- ``scope = main_study``: the study this table belongs to, on its own split (for config/config.yaml:
  FRDEEP's published split), when its summary.csv is there.

``val_test_gap`` is validation minus test accuracy: negative when validation is below test.

``make splits-ablation`` runs the same split studies once per choice of ``config/ablation/``;
``choice_across_splits`` compares them (``rgmorph compare-split-choices``), each split paired with itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from rgmorph.evaluate import GROUP_COLUMNS
from rgmorph.files import write_csv_atomic
from rgmorph.layout import table

METRICS = ["test_accuracy", "test_auroc", "test_ensemble_accuracy", "val_accuracy", "val_test_gap"]
SPREADS = ["std", "min", "max"]
SCOPE_ORDER = {"main_study": 0, "split": 1, "across_splits": 2}


class SplitStudyMissing(FileNotFoundError):
    """A split study named in the config has not been run (or not to its summaries)."""


def study_dir(splits_dir: str | Path, seed: int) -> str:
    """Where the study of split seed ``seed`` lives (its results_dir), as make splits writes it."""
    return f"{splits_dir}/seed{seed}"


def _summary_files(results_dir: str | Path) -> list[str]:
    return [table(results_dir, "summary.csv"), table(results_dir, "summary_validation.csv")]


def check_studies(studies: Mapping[int, str | Path]) -> None:
    """Name every split study whose summaries are missing, all at once."""
    missing = [f"split seed {seed} ({folder}): no {path}" for seed, folder in studies.items()
               for path in _summary_files(folder) if not Path(path).is_file()]
    if missing:
        raise SplitStudyMissing("split studies not run (make splits runs them):\n  " + "\n  ".join(missing))


def _read_summary(path: str | Path) -> pd.DataFrame:
    summary = pd.read_csv(path, dtype=dict.fromkeys(GROUP_COLUMNS, str))
    summary[GROUP_COLUMNS] = summary[GROUP_COLUMNS].fillna("")  # a scratch run's empty pretrained_on
    return summary


def _test_columns(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[GROUP_COLUMNS + ["seeds", "n_test", "accuracy_mean", "auroc_mean"]].rename(
        columns={"accuracy_mean": "test_accuracy", "auroc_mean": "test_auroc"})


def _validation_columns(validation: pd.DataFrame) -> pd.DataFrame:
    return validation[GROUP_COLUMNS + ["n_test", "accuracy_mean"]].rename(
        columns={"n_test": "n_validation", "accuracy_mean": "val_accuracy"})


def _ensemble_columns(results_dir: str | Path) -> pd.DataFrame:
    """The seed ensemble's test accuracy per variant; no rows where the study has no tables/ensembles.csv."""
    path = Path(table(results_dir, "ensembles.csv"))
    if not path.is_file():
        return pd.DataFrame(columns=GROUP_COLUMNS).assign(test_ensemble_accuracy=pd.Series(dtype=float))
    return _read_summary(path)[GROUP_COLUMNS + ["accuracy"]].rename(columns={"accuracy": "test_ensemble_accuracy"})


def read_split_study(results_dir: str | Path) -> pd.DataFrame:
    """One row per variant: test accuracy and AUROC (means over seeds), the seed ensemble's test accuracy,
    validation accuracy and its gap to test."""
    summary_path, validation_path = _summary_files(results_dir)
    rows = (_test_columns(_read_summary(summary_path))
            .merge(_ensemble_columns(results_dir), on=GROUP_COLUMNS, how="left")
            .merge(_validation_columns(_read_summary(validation_path)), on=GROUP_COLUMNS, how="left"))
    rows["val_test_gap"] = rows["val_accuracy"] - rows["test_accuracy"]
    return rows.assign(validation_from="summary_validation.csv", results_dir=str(results_dir))


def read_main_study(results_dir: str | Path) -> pd.DataFrame | None:
    """The main study's own split, or None without its summary.csv. Validation accuracy from its
    summary_validation.csv, else from summary.csv's val_accuracy_mean (the kept epoch's, in training)."""
    summary_path, validation_path = _summary_files(results_dir)
    if not Path(summary_path).is_file():
        return None
    if Path(validation_path).is_file():
        return read_split_study(results_dir).assign(scope="main_study")
    summary = _read_summary(summary_path)
    rows = _test_columns(summary).merge(_ensemble_columns(results_dir), on=GROUP_COLUMNS, how="left")
    rows["val_accuracy"] = summary.get("val_accuracy_mean", float("nan"))
    rows["val_test_gap"] = rows["val_accuracy"] - rows["test_accuracy"]
    return rows.assign(validation_from="summary.csv val_accuracy_mean", results_dir=str(results_dir),
                       scope="main_study")


def read_splits(studies: Mapping[int, str | Path]) -> pd.DataFrame:
    """Every split study's rows, with its split seed."""
    check_studies(studies)
    return pd.concat([read_split_study(folder).assign(scope="split", split_seed=seed)
                      for seed, folder in studies.items()], ignore_index=True)


def across_splits(per_split: pd.DataFrame) -> pd.DataFrame:
    """Per variant over the split means: mean (under the metric's own name), std (ddof=1), min, max."""
    grouped = per_split.groupby(GROUP_COLUMNS, sort=True)[METRICS]
    spread = grouped.agg(["mean", *SPREADS])
    spread.columns = [name if stat == "mean" else f"{name}_{stat}" for name, stat in spread.columns]
    spread["n_splits"] = grouped.size()
    return spread.reset_index().assign(scope="across_splits")


def split_spread(studies: Mapping[int, str | Path], main_results: str | Path | None = None) -> pd.DataFrame:
    """The split_spread table: per variant, each split, across splits and (when there) the main study."""
    per_split = read_splits(studies).assign(n_splits=1)
    parts = [per_split, across_splits(per_split)]
    main = read_main_study(main_results) if main_results is not None else None
    if main is not None:  # only the variants the split studies trained
        parts.insert(0, main.merge(per_split[GROUP_COLUMNS].drop_duplicates(), on=GROUP_COLUMNS).assign(n_splits=1))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows.sort_values(GROUP_COLUMNS + ["scope", "split_seed"],
                            key=lambda column: column.map(SCOPE_ORDER) if column.name == "scope" else column)
    counts = [column for column in ("split_seed", "n_splits", "seeds", "n_test", "n_validation") if column in rows]
    rows[counts] = rows[counts].astype("Int64")  # whole numbers, empty where a scope has none
    return rows[_column_order(rows)].reset_index(drop=True)


def _column_order(rows: pd.DataFrame) -> list[str]:
    first = GROUP_COLUMNS + ["scope", "split_seed", "n_splits", "seeds", "n_test", "n_validation"]
    metrics = [f"{name}{suffix}" for name in METRICS for suffix in ["", *[f"_{s}" for s in SPREADS]]]
    return [column for column in first + metrics + ["validation_from", "results_dir"] if column in rows]


def write_split_spread(studies: Mapping[int, str | Path], output: str | Path,
                       main_results: str | Path | None = None) -> pd.DataFrame:
    rows = split_spread(studies, main_results)
    write_csv_atomic(output, rows, float_format="%.4f")
    return rows


def choice_across_splits(splits_dirs: Mapping[str, str | Path], seeds: list[int]) -> pd.DataFrame:
    """An ablation over repeated splits: per choice (a folder of seed<k> split studies, the reference first) and
    variant trained under every choice, the mean and std over splits, each split paired with the reference's
    same split (the change in test accuracy: mean, min, max, and on how many splits it is up), and the choice
    picked per variant on the mean validation accuracy (a tie: the first listed)."""
    from rgmorph.choice import pick_on_validation

    order = list(splits_dirs)
    per_split = pd.concat([read_splits({seed: study_dir(folder, seed) for seed in seeds}).assign(ablation=choice)
                           for choice, folder in splits_dirs.items()], ignore_index=True)
    trained_by_all = per_split.groupby(GROUP_COLUMNS)["ablation"].transform("nunique") == len(order)
    per_split = per_split[trained_by_all]
    reference = per_split[per_split["ablation"] == order[0]][[*GROUP_COLUMNS, "split_seed", "test_accuracy"]]
    per_split = per_split.merge(reference, on=[*GROUP_COLUMNS, "split_seed"], suffixes=("", "_reference"))
    change = f"test_accuracy_change_vs_{order[0]}"
    per_split[change] = per_split["test_accuracy"] - per_split["test_accuracy_reference"]
    rows = per_split.groupby([*GROUP_COLUMNS, "ablation"], sort=False).agg(
        n_splits=("split_seed", "size"), n_test=("n_test", "sum"),
        val_accuracy_mean=("val_accuracy", "mean"), val_accuracy_std=("val_accuracy", "std"),
        test_accuracy_mean=("test_accuracy", "mean"), test_accuracy_std=("test_accuracy", "std"),
        test_auroc_mean=("test_auroc", "mean"), test_ensemble_accuracy_mean=("test_ensemble_accuracy", "mean"),
        **{f"{change}_mean": (change, "mean"), f"{change}_min": (change, "min"), f"{change}_max": (change, "max")},
        splits_up=(change, lambda values: int((values > 0).sum()))).reset_index()
    rows["picked_on_validation"] = pick_on_validation(rows.assign(val_loss_mean=float("nan"), choice=rows["ablation"]),
                                                      order, GROUP_COLUMNS)
    leading = [*GROUP_COLUMNS, "ablation", "picked_on_validation"]
    return rows[[*leading, *[column for column in rows.columns if column not in leading]]]


def write_choice_across_splits(splits_dirs: Mapping[str, str | Path], seeds: list[int],
                               output: str | Path) -> pd.DataFrame:
    rows = choice_across_splits(splits_dirs, seeds)
    write_csv_atomic(output, rows, float_format="%.4f")
    return rows


def main(argv: list[str] | None = None) -> int:
    """``python -m rgmorph.splits``: the table without Snakemake (make splits makes it through the rule)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rgmorph.splits", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="split seeds (default: 1-5)")
    parser.add_argument("--splits-dir", default="results/splits", help="folder of the seed<k> studies")
    parser.add_argument("--main", default="results", help="the main study's results_dir (its own split)")
    parser.add_argument("--output", default="results/tables/split_spread.csv")
    arguments = parser.parse_args(argv)
    studies = {seed: study_dir(arguments.splits_dir, seed) for seed in arguments.seeds}
    print(write_split_spread(studies, arguments.output, arguments.main).to_string(index=False))
    print(f"written: {arguments.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
