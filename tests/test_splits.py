"""Spread across splits (make splits): the overlay, the split studies' plan and catalogues, and the table."""

import math
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config, validate

from conftest import QUICKSTART_MIRROR, REPO
from rgmorph import cli, config_check
from rgmorph.neighbours import NeighbourSettings, linked_pairs, survey_fields
from rgmorph.splits import SplitStudyMissing, choice_across_splits, split_spread, study_dir, write_split_spread

PUBLISHED = [REPO / "config" / "config.yaml", REPO / "config" / "published.yaml"]
OVERLAY = REPO / "config" / "splits.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
BUNDLED_MIRROR = {**os.environ, "RGMORPH_SKYVIEW_MIRROR": str(QUICKSTART_MIRROR)}
KEYS = {"kind": "scratch", "pretrained_on": "", "trained_on": "FIRST", "survey": "FIRST"}
# planted per-split means over training seeds: test accuracy, test AUROC, validation accuracy
PLANTED = {
    "tang2019": {1: (0.90, 0.95, 0.88), 2: (0.94, 0.97, 0.90), 3: (0.86, 0.96, 0.86)},
    "gabor_svm": {1: (0.80, 0.90, 0.81), 2: (0.82, 0.91, 0.85), 3: (0.84, 0.92, 0.80)},
}


def _snakemake(*arguments):
    return subprocess.run([sys.executable, "-m", "snakemake", *arguments], cwd=REPO, capture_output=True, text=True,
                          env=BUNDLED_MIRROR)


def _seed_overlay(folder, seed):
    """What make splits writes per split seed (Snakemake's --config would read the seed as a string)."""
    path = folder / f"seed{seed}.yaml"
    path.write_text(f"results_dir: {folder / f'seed{seed}'}\ncatalogue: {{split: {{seed: {seed}}}}}\n")
    return path


def _plant_summaries(results, rows, validation_rows=None):
    (results / "tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(results / "tables" / "summary.csv", index=False)
    if validation_rows is not None:
        pd.DataFrame(validation_rows).to_csv(results / "tables" / "summary_validation.csv", index=False)


def _plant_split_studies(folder):
    for seed in (1, 2, 3):
        test = [{"model": model, **KEYS, "seeds": 3, "n_test": 190 + seed, "accuracy_mean": values[seed][0],
                 "auroc_mean": values[seed][1]} for model, values in PLANTED.items()]
        validation = [{"model": model, **KEYS, "seeds": 3, "n_test": 93, "accuracy_mean": values[seed][2]}
                      for model, values in PLANTED.items()]
        _plant_summaries(folder / f"seed{seed}", test, validation)
    return {seed: study_dir(folder, seed) for seed in (1, 2, 3)}


def _plant_main_study(results):
    """The published run: no summary_validation.csv, so validation accuracy from val_accuracy_mean."""
    _plant_summaries(results, [
        {"model": model, **KEYS, "seeds": 5, "n_test": 198, "accuracy_mean": test, "auroc_mean": 0.99,
         "val_accuracy_mean": validation}
        for model, test, validation in [("tang2019", 0.944, 0.85), ("lenet", 0.843, 0.80)]])


def _row(table, model, scope, seed=None):
    rows = table[(table["model"] == model) & (table["scope"] == scope)]
    if seed is not None:
        rows = rows[rows["split_seed"] == seed]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ------------------------------------------------------------------ the table


def test_spread_matches_a_hand_computation(tmp_path):
    studies = _plant_split_studies(tmp_path / "splits")
    output = tmp_path / "split_spread.csv"
    write_split_spread(studies, output)
    table = pd.read_csv(output, keep_default_na=False, na_values=[""])
    assert list(table["scope"]) == ["split"] * 3 + ["across_splits"] + ["split"] * 3 + ["across_splits"]
    tang = _row(table, "tang2019", "across_splits")
    # by hand: mean 0.90; deviations 0, +0.04, -0.04, so the sample std (ddof=1) is sqrt(0.0032 / 2) = 0.04
    assert tang["test_accuracy"] == pytest.approx(0.90, abs=1e-4)
    assert tang["test_accuracy_std"] == pytest.approx(0.04, abs=1e-4)
    assert (tang["test_accuracy_min"], tang["test_accuracy_max"]) == pytest.approx((0.86, 0.94), abs=1e-4)
    assert (tang["test_auroc"], tang["test_auroc_std"]) == pytest.approx((0.96, 0.01), abs=1e-4)
    assert (tang["val_accuracy"], tang["val_accuracy_std"]) == pytest.approx((0.88, 0.02), abs=1e-4)
    # gaps (validation - test) -0.02, -0.04, 0.00: mean -0.02, std 0.02
    assert (tang["val_test_gap"], tang["val_test_gap_std"]) == pytest.approx((-0.02, 0.02), abs=1e-4)
    assert tang["n_splits"] == 3
    gabor = _row(table, "gabor_svm", "across_splits")
    assert (gabor["test_accuracy"], gabor["test_accuracy_std"]) == pytest.approx((0.82, 0.02), abs=1e-4)
    assert gabor["val_test_gap"] == pytest.approx((0.01 + 0.03 - 0.04) / 3, abs=1e-4)
    one_split = _row(table, "tang2019", "split", seed=2)
    assert (one_split["test_accuracy"], one_split["val_accuracy"]) == pytest.approx((0.94, 0.90), abs=1e-4)
    assert one_split["val_test_gap"] == pytest.approx(-0.04, abs=1e-4)
    assert (one_split["n_test"], one_split["n_validation"]) == (192, 93)
    assert math.isnan(one_split["test_accuracy_std"])  # a spread only across splits


def test_main_study_row_is_beside_the_splits_for_their_variants_only(tmp_path):
    studies = _plant_split_studies(tmp_path / "splits")
    _plant_main_study(tmp_path / "main")
    table = split_spread(studies, tmp_path / "main")
    main = table[table["scope"] == "main_study"]
    assert list(main["model"]) == ["tang2019"]  # lenet trained in no split study
    row = main.iloc[0]
    assert row["val_test_gap"] == pytest.approx(0.85 - 0.944)
    assert row["validation_from"] == "summary.csv val_accuracy_mean" and row["n_test"] == 198
    assert list(table[table["model"] == "tang2019"]["scope"]) == ["main_study", "split", "split", "split",
                                                                  "across_splits"]
    # without the main study's summary: the split rows alone
    assert "main_study" not in set(split_spread(studies, tmp_path / "nowhere")["scope"])


def test_seed_ensembles_are_beside_the_seed_means_where_a_study_has_them(tmp_path):
    studies = _plant_split_studies(tmp_path / "splits")
    for seed, accuracy in [(1, 0.93), (2, 0.95)]:  # split 3 has no tables/ensembles.csv
        pd.DataFrame([{"model": "tang2019", **KEYS, "variant": "ensemble(tang2019)", "seeds": 3,
                       "accuracy": accuracy}]).to_csv(tmp_path / "splits" / f"seed{seed}" / "tables" / "ensembles.csv",
                                                      index=False)
    table = split_spread(studies)
    assert _row(table, "tang2019", "split", seed=2)["test_ensemble_accuracy"] == pytest.approx(0.95)
    assert _row(table, "tang2019", "split", seed=2)["test_accuracy"] == pytest.approx(0.94)  # the seeds' mean
    assert math.isnan(_row(table, "tang2019", "split", seed=3)["test_ensemble_accuracy"])
    assert math.isnan(_row(table, "gabor_svm", "split", seed=1)["test_ensemble_accuracy"])
    across = _row(table, "tang2019", "across_splits")
    assert across["test_ensemble_accuracy"] == pytest.approx(0.94)  # over the splits that have one
    assert (across["test_ensemble_accuracy_min"], across["test_ensemble_accuracy_max"]) == pytest.approx((0.93, 0.95))


def test_a_missing_split_study_is_named(tmp_path):
    studies = _plant_split_studies(tmp_path / "splits")
    (tmp_path / "splits" / "seed2" / "tables" / "summary_validation.csv").unlink()
    studies[4] = study_dir(tmp_path / "splits", 4)
    with pytest.raises(SplitStudyMissing) as error:
        split_spread(studies)
    message = str(error.value)
    assert f"split seed 2 ({tmp_path / 'splits' / 'seed2'}): no" in message
    assert "seed2/tables/summary_validation.csv" in message and "seed4/tables/summary.csv" in message
    assert "split seed 1" not in message and "seed3" not in message and "make splits" in message


# ------------------------------------------------------------------ the overlay and the split studies


def _overlaid():
    """The published run with the overlay, as common.smk reads it: merged, checked, NVSS dropped, defaults."""
    config = {}
    for path in [*PUBLISHED, OVERLAY]:
        update_config(config, yaml.safe_load(path.read_text()))
    assert config_check.schema_problems(config, SCHEMA) == []
    config = config_check.drop_left_out_surveys(config)
    validate(config, str(SCHEMA), set_default=True)
    return config


def test_overlay_validates_and_narrows_the_published_run():
    config = _overlaid()
    assert list(config["surveys"]) == ["FIRST"]
    assert config["train"]["models"] == ["tang2019", "gabor_svm"] and config["train"]["seeds"] == [0, 1, 2, 3, 4]
    assert config["train"]["epochs"] == 60 and config["transfer"]["models"] == []
    assert config["catalogue"]["columns"]["split"] is None
    assert config["catalogue"]["split"]["test_fraction"] == 0.3
    assert config["catalogue"]["neighbours"]["action"] == "drop_test"
    assert config["evaluate"]["extra_splits"] == ["validation"]
    assert config["splits"]["seeds"] == []  # a split study makes no split table of its own


def test_split_study_plans_first_only_with_the_two_models(tmp_path):
    result = _snakemake("-n", "--configfile", *map(str, PUBLISHED), str(OVERLAY), str(_seed_overlay(tmp_path, 3)))
    assert result.returncode == 0, result.stderr[-4000:]
    wildcards = [line.split("wildcards:", 1)[1] for line in result.stdout.splitlines() if "wildcards:" in line]
    fields = [dict(item.strip().split("=", 1) for item in line.split(",")) for line in wildcards]
    assert {f["survey"] for f in fields if "survey" in f} == {"FIRST"}
    assert {f["model"] for f in fields if "model" in f} == {"tang2019", "gabor_svm"}
    assert {f["seed"] for f in fields if "seed" in f} == {"0", "1", "2", "3", "4"}
    assert "train_transfer" not in result.stdout and "split_spread" not in result.stdout
    assert "evaluate_extra_split" in result.stdout  # the validation split, for the gap


def _split_catalogue(folder, seed):
    overlay = _seed_overlay(folder, seed)
    target = folder / f"seed{seed}" / "catalogue" / "sources.csv"
    result = _snakemake(str(target), "--cores", "1", "--configfile", *map(str, PUBLISHED), str(OVERLAY), str(overlay))
    assert result.returncode == 0, result.stderr[-4000:]
    return pd.read_csv(target)


def test_two_split_seeds_give_different_test_sets_without_cross_split_neighbours(tmp_path):
    config = _overlaid()
    neighbours = NeighbourSettings.from_config(config["catalogue"]["neighbours"])
    fields = survey_fields(config["surveys"], config["catalogue"]["neighbours"])
    tests = []
    for seed in (1, 2):
        sources = _split_catalogue(tmp_path, seed)
        test = set(sources.loc[sources["split"] == "test", "name"])
        assert not test & set(sources.loc[sources["split"] == "train", "name"])
        assert 180 <= len(test) <= round(0.3 * 658)  # 197 drawn, the test member of each neighbour pair dropped
        pairs = linked_pairs(sources, neighbours, fields)
        split = sources["split"].to_numpy()
        assert (split[pairs["a"]] == split[pairs["b"]]).all(), "a train/test neighbour pair is left"
        tests.append(test)
    assert tests[0] != tests[1]


# ------------------------------------------------------------------ the rule in the main study's DAG


def _main_config(tmp_path, seeds):
    path = tmp_path / "main.yaml"
    splits = {"seeds": seeds, "results_dir": str(tmp_path / "splits")}
    path.write_text(yaml.safe_dump({"results_dir": str(tmp_path / "main"), "splits": splits}))
    return str(path)


def test_rule_writes_the_table_from_the_split_studies(tmp_path):
    _plant_split_studies(tmp_path / "splits")
    _plant_main_study(tmp_path / "main")
    target = tmp_path / "main" / "tables" / "split_spread.csv"
    result = _snakemake(str(target), "--cores", "1", "--allowed-rules", "split_spread",
                        "--configfile", *map(str, PUBLISHED), _main_config(tmp_path, [1, 2, 3]))
    assert result.returncode == 0, result.stderr[-4000:]
    table = pd.read_csv(target, keep_default_na=False, na_values=[""])
    assert _row(table, "tang2019", "across_splits")["test_accuracy"] == pytest.approx(0.90, abs=1e-4)
    assert _row(table, "tang2019", "main_study")["n_test"] == 198


def test_rule_names_a_missing_split_study_and_is_absent_without_seeds(tmp_path):
    _plant_split_studies(tmp_path / "splits")
    result = _snakemake("-n", "--configfile", *map(str, PUBLISHED), _main_config(tmp_path, [1, 2, 3, 7]))
    assert result.returncode != 0
    assert f"{tmp_path / 'splits' / 'seed7' / 'tables' / 'summary.csv'}" in result.stdout + result.stderr
    result = _snakemake("-n", "--quiet", "rules", "--configfile", str(REPO / "config" / "quickstart.yaml"),
                        "--config", f"results_dir={tmp_path / 'quickstart'}")
    assert result.returncode == 0 and "split_spread" not in result.stdout


# ------------------------------------------------------------------ choices across splits (make splits-ablation)


def test_choices_across_splits_are_paired_by_split_and_picked_on_validation(tmp_path):
    _plant_split_studies(tmp_path / "baseline")
    for seed, (test, validation) in {1: (0.92, 0.87), 2: (0.93, 0.91), 3: (0.91, 0.90)}.items():
        _plant_summaries(tmp_path / "longer" / f"seed{seed}",
                         [{"model": "tang2019", **KEYS, "seeds": 3, "n_test": 190 + seed, "accuracy_mean": test,
                           "auroc_mean": 0.97}],
                         [{"model": "tang2019", **KEYS, "seeds": 3, "n_test": 93, "accuracy_mean": validation}])
    table = choice_across_splits({"baseline": tmp_path / "baseline", "longer": tmp_path / "longer"}, [1, 2, 3])
    assert list(table["model"]) == ["tang2019", "tang2019"]  # gabor_svm trained under one choice only
    longer = table.set_index("ablation").loc["longer"]
    # validation over splits: baseline 0.88, longer (0.87 + 0.91 + 0.90) / 3 = 0.8933, so longer is picked
    assert longer["val_accuracy_mean"] == pytest.approx(0.8933, abs=1e-4)
    assert list(table["picked_on_validation"]) == [False, True]
    # paired by split against the baseline's 0.90, 0.94, 0.86: +0.02, -0.01, +0.05
    assert longer["test_accuracy_change_vs_baseline_mean"] == pytest.approx(0.02, abs=1e-4)
    assert (longer["test_accuracy_change_vs_baseline_min"],
            longer["test_accuracy_change_vs_baseline_max"]) == pytest.approx((-0.01, 0.05), abs=1e-4)
    assert longer["splits_up"] == 2 and longer["n_splits"] == 3 and longer["n_test"] == 191 + 192 + 193
    assert longer["test_accuracy_std"] == pytest.approx(0.01, abs=1e-4)


def test_a_tie_on_validation_across_splits_keeps_the_reference(tmp_path):
    _plant_split_studies(tmp_path / "baseline")
    _plant_split_studies(tmp_path / "same")
    table = choice_across_splits({"baseline": tmp_path / "baseline", "same": tmp_path / "same"}, [1, 2, 3])
    assert table.set_index(["model", "ablation"])["picked_on_validation"].to_dict() == {
        ("gabor_svm", "baseline"): True, ("gabor_svm", "same"): False,
        ("tang2019", "baseline"): True, ("tang2019", "same"): False}
    assert (table["test_accuracy_change_vs_baseline_mean"] == 0).all()


def test_compare_split_choices_names_a_choice_whose_split_is_missing(tmp_path):
    _plant_split_studies(tmp_path / "baseline")
    _plant_split_studies(tmp_path / "other")
    (tmp_path / "other" / "seed3" / "tables" / "summary.csv").unlink()
    output = tmp_path / "ablation.csv"
    with pytest.raises(SplitStudyMissing, match="seed3"):
        cli.main(["compare-split-choices", "--seeds", "1", "2", "3", "--output", str(output),
                  f"baseline={tmp_path / 'baseline'}", f"other={tmp_path / 'other'}"])
    assert not output.exists()


def test_compare_split_choices_names_a_choice_without_its_folder(tmp_path, capsys):
    output = tmp_path / "ablation.csv"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["compare-split-choices", "--output", str(output), f"baseline={tmp_path}", "sigma2"])
    assert exit_.value.code == 2
    assert "'sigma2' is not CHOICE=FOLDER" in capsys.readouterr().err
    assert not output.exists()
