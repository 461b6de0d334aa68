"""Referee items of issue 13 on planted inputs: the cross-split neighbours table, the published study before
and after cleaning (tables/cleaning_effect.csv) and a setting chosen on validation (tables/circular_mask.csv)."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from rgmorph import cli
from rgmorph.choice import choice_table, cross_entropy, write_choice_table
from rgmorph.cleaning import cleaning_effect, read_summary, write_cleaning_effect
from rgmorph.neighbours import NeighbourSettings, neighbours_table, resolve_neighbours, write_neighbours_table

# ------------------------------------------------- tables/neighbours.csv


def _sources(*rows):
    return pd.DataFrame(rows, columns=["name", "ra_deg", "dec_deg", "split"])


# A/B: one object 3.5 arcsec apart; C/D: 200 arcsec apart, distinct, but sharing most of an NVSS field
PLANTED = _sources(("A", 150.0, 10.0, "train"), ("B", 150.001, 10.0, "test"),
                   ("C", 160.0, 20.0, "train"), ("D", 160.0, 20.0 + 200 / 3600, "test"),
                   ("E", 170.0, 30.0, "test"))
FIELDS = {"FIRST": 270.0, "NVSS": 2250.0}  # 150 pixels of 1.8 and 15 arcsec


@pytest.mark.parametrize("action, word, detail", [
    ("drop_test", "dropped", "dropped B (test)"), ("move_to_train", "moved", "moved B to train"),
    ("keep", "kept", "kept")])
def test_the_neighbours_table_says_why_each_pair_was_flagged_and_what_was_done(tmp_path, action, word, detail):
    settings = NeighbourSettings(30.0, 0.5, action)
    _, pairs = resolve_neighbours(PLANTED, settings, FIELDS)
    pairs.to_csv(tmp_path / "neighbours.csv", index=False)  # as the catalogue stage writes it
    table = write_neighbours_table(tmp_path / "neighbours.csv", {"action": action}, tmp_path / "table.csv")
    assert list(table.columns) == ["train_name", "test_name", "separation_arcsec", "same_source", "overlap_FIRST",
                                   "overlap_NVSS", "linked_by", "action", "detail"]
    assert list(zip(table["train_name"], table["test_name"])) == [("A", "B"), ("C", "D")]
    assert table.loc[0, "linked_by"] == "separation < 30 arcsec; FIRST field overlap > 0.5; NVSS field overlap > 0.5"
    assert table.loc[1, "linked_by"] == "NVSS field overlap > 0.5" and not table.loc[1, "same_source"]
    assert set(table["action"]) == {word} and table.loc[0, "detail"] == detail
    assert pd.read_csv(tmp_path / "table.csv")["overlap_NVSS"].between(0.5, 1).all()


def test_no_neighbours_gives_a_table_with_its_header_alone(tmp_path):
    _, pairs = resolve_neighbours(PLANTED.iloc[[0, 4]], NeighbourSettings(), FIELDS)
    pairs.to_csv(tmp_path / "neighbours.csv", index=False)
    write_neighbours_table(tmp_path / "neighbours.csv", None, tmp_path / "table.csv")
    table = pd.read_csv(tmp_path / "table.csv")
    assert table.empty and {"linked_by", "action", "detail"} <= set(table.columns)


def test_an_unknown_action_in_the_pair_report_is_refused():
    pairs = pd.DataFrame({"train_name": ["A"], "test_name": ["B"], "separation_arcsec": [1.0],
                          "same_source": [True], "action": ["renamed B"]})
    with pytest.raises(ValueError, match="renamed"):
        neighbours_table(pairs, NeighbourSettings())


# ------------------------------------------------- tables/cleaning_effect.csv


def _summary_row(model, kind, trained_on, survey, n_test, accuracy, auroc, std=0.01):
    return {"model": model, "kind": kind, "pretrained_on": trained_on if kind == "transfer" else "",
            "trained_on": trained_on, "survey": survey, "seeds": 5, "n_test": n_test, "accuracy_mean": accuracy,
            "accuracy_std": std, "auroc_mean": auroc, "auroc_std": std, "ece_mean": 0.05}


PUBLISHED_JSON = {  # as scripts/dvc_metrics.py keys it
    "FIRST": {"tang2019": {"n_test": 198, "seeds": 5, "accuracy_mean": 0.944, "accuracy_std": 0.008,
                           "auroc_mean": 0.988, "auroc_std": 0.001}},
    "NVSS->FIRST": {"tang2019-transfer-from-NVSS": {"n_test": 198, "seeds": 5, "accuracy_mean": 0.894,
                                                   "accuracy_std": 0.013, "auroc_mean": 0.961, "auroc_std": 0.004}},
    "NVSS": {"lenet": {"n_test": 198, "seeds": 5, "accuracy_mean": 0.79, "accuracy_std": 0.03,
                       "auroc_mean": 0.845, "auroc_std": 0.022}},
}
CLEANED = pd.DataFrame([_summary_row("tang2019", "scratch", "FIRST", "FIRST", 186, 0.930, 0.980),
                        _summary_row("tang2019", "transfer", "NVSS", "FIRST", 186, 0.900, 0.965),
                        _summary_row("gabor_svm", "scratch", "NVSS", "NVSS", 186, 0.83, 0.90)])


def test_the_cleaning_effect_sets_each_variant_beside_its_published_numbers(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps(PUBLISHED_JSON))
    CLEANED.to_csv(tmp_path / "summary.csv", index=False)
    table = write_cleaning_effect(tmp_path / "summary.json", tmp_path / "summary.csv", tmp_path / "effect.csv")
    assert list(table.columns[:4]) == ["model", "kind", "trained_on", "survey"]
    rows = table.set_index(["model", "kind", "trained_on", "survey"])
    scratch = rows.loc[("tang2019", "scratch", "FIRST", "FIRST")]
    assert (scratch["n_test_published"], scratch["n_test_cleaned"]) == (198, 186)
    assert scratch["accuracy_mean_published"] == 0.944 and scratch["accuracy_std_cleaned"] == 0.01
    assert scratch["accuracy_change"] == pytest.approx(-0.014) and scratch["auroc_change"] == pytest.approx(-0.008)
    assert rows.loc[("tang2019", "transfer", "NVSS", "FIRST"), "accuracy_change"] == pytest.approx(0.006)
    # a variant only one run has: kept, with blanks for the other run
    assert np.isnan(rows.loc[("lenet", "scratch", "NVSS", "NVSS"), "accuracy_mean_cleaned"])
    assert np.isnan(rows.loc[("gabor_svm", "scratch", "NVSS", "NVSS"), "n_test_published"])
    assert len(pd.read_csv(tmp_path / "effect.csv")) == 4


def test_with_transfer_modes_the_frozen_mode_is_set_beside_the_published_transfer(tmp_path):
    modes = CLEANED.assign(mode=["", "frozen", ""])
    finetune = modes.iloc[[1]].assign(mode="finetune", accuracy_mean=0.95)
    pd.concat([modes, finetune]).to_csv(tmp_path / "summary.csv", index=False)
    cleaned = read_summary(tmp_path / "summary.csv")
    assert len(cleaned) == 3
    assert cleaned.loc[cleaned["kind"] == "transfer", "accuracy_mean"].tolist() == [0.900]


def read_summary_json(nested, folder):
    (folder / "summary.json").write_text(json.dumps(nested))
    return read_summary(folder / "summary.json")


def test_the_published_run_reads_the_same_from_its_json_and_its_csv(tmp_path):
    published = pd.DataFrame([_summary_row("tang2019", "scratch", "FIRST", "FIRST", 198, 0.944, 0.988, 0.008)])
    published.to_csv(tmp_path / "summary.csv", index=False)
    from_csv = read_summary(tmp_path / "summary.csv")
    from_json = read_summary_json({"FIRST": {"tang2019": published.drop(
        columns=["model", "kind", "pretrained_on", "trained_on", "survey"]).iloc[0].to_dict()}}, tmp_path)
    pd.testing.assert_frame_equal(from_csv, from_json[from_csv.columns], check_dtype=False)
    assert cleaning_effect(from_csv, from_json)["accuracy_change"].tolist() == [0.0]


def test_the_committed_published_metrics_read_as_eight_variants_on_198_test_sources():
    published = read_summary(REPO / "metrics" / "summary.json")
    assert len(published) == 8 and set(published["n_test"]) == {198}
    transfer = published[published["kind"] == "transfer"]
    assert sorted(zip(transfer["trained_on"], transfer["survey"])) == [("FIRST", "NVSS"), ("NVSS", "FIRST")]


def test_a_table_that_is_no_summary_is_refused(tmp_path):
    pd.DataFrame({"model": ["tang2019"], "accuracy": [0.9]}).to_csv(tmp_path / "runs.csv", index=False)
    with pytest.raises(ValueError, match="summary"):
        read_summary(tmp_path / "runs.csv")


# ------------------------------------------------- tables/circular_mask.csv (a choice made on validation)


def _planted_study(folder, val_accuracy, test_accuracy, val_probability, model="tang2019"):
    """A choice's study: summaries on validation and test, and per seed a predictions_validation.csv whose
    true-class probability is ``val_probability`` for every source (so its loss is -log of it)."""
    (folder / "tables").mkdir(parents=True)
    for name, accuracy in (("summary_validation", val_accuracy), ("summary", test_accuracy)):
        rows = [_summary_row(model, "scratch", survey, survey, 92 if name != "summary" else 198,
                             accuracy[survey], accuracy[survey] + 0.02) for survey in ("FIRST", "NVSS")]
        pd.DataFrame(rows).to_csv(folder / "tables" / f"{name}.csv", index=False)
    for survey in ("FIRST", "NVSS"):
        for seed, shift in ((0, -0.01), (1, 0.01)):
            run = folder / "evaluation" / survey / model / f"seed{seed}"
            run.mkdir(parents=True)
            p = val_probability[survey] + shift
            pd.DataFrame({"name": ["a", "b"], "label": [0, 1], "class_name": ["FRI", "FRII"], "predicted": [0, 1],
                          "probability_FRI": [p, 1 - p], "probability_FRII": [1 - p, p]}).to_csv(
                run / "predictions_validation.csv", index=False)


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_true_class():
    predictions = pd.DataFrame({"label": [0, 1, 1], "probability_FRI": [0.8, 0.5, 1.0],
                                "probability_FRII": [0.2, 0.5, 0.0]})
    assert cross_entropy(predictions) == pytest.approx(-(np.log(0.8) + np.log(0.5) + np.log(1e-12)) / 3)


def test_the_choice_is_made_on_validation_and_the_test_effect_only_shown(tmp_path):
    # FIRST: 'true' wins on validation though it loses on test; NVSS: validation accuracy tied, 'true' has
    # the lower validation loss
    _planted_study(tmp_path / "false", {"FIRST": 0.90, "NVSS": 0.85}, {"FIRST": 0.95, "NVSS": 0.86},
                   {"FIRST": 0.8, "NVSS": 0.7})
    _planted_study(tmp_path / "true", {"FIRST": 0.92, "NVSS": 0.85}, {"FIRST": 0.93, "NVSS": 0.88},
                   {"FIRST": 0.8, "NVSS": 0.9})
    table = choice_table({"false": tmp_path / "false", "true": tmp_path / "true"}, "circular_mask")
    assert list(table.columns[:6]) == ["model", "kind", "trained_on", "survey", "circular_mask", "picked_on_validation"]
    picked = table[table["picked_on_validation"]].set_index("survey")["circular_mask"]
    assert picked.to_dict() == {"FIRST": "true", "NVSS": "true"}
    first = table[table["survey"] == "FIRST"].set_index("circular_mask")
    assert first.loc["true", "test_accuracy_change_vs_false"] == pytest.approx(-0.02)
    assert first.loc["false", "test_accuracy_change_vs_false"] == 0.0
    assert first.loc["false", "val_loss_mean"] == pytest.approx(-np.mean([np.log(0.79), np.log(0.81)]))
    assert first.loc["false", "val_loss_std"] > 0 and first.loc["true", "n_val"] == 92
    assert first.loc["true", "n_test"] == 198 and first.loc["true", "test_auroc_mean"] == pytest.approx(0.95)


def test_the_choice_table_shows_which_class_a_choice_moves_and_the_seed_ensemble(tmp_path):
    for choice, (recall_fri, ensemble) in {"baseline": (0.90, 0.95), "ema": (0.96, 0.97)}.items():
        _planted_study(tmp_path / choice, {"FIRST": 0.9, "NVSS": 0.9}, {"FIRST": 0.9, "NVSS": 0.9},
                       {"FIRST": 0.8, "NVSS": 0.8})
        summary = pd.read_csv(tmp_path / choice / "tables" / "summary.csv")
        summary.assign(recall_FRI_mean=recall_fri, recall_FRI_std=0.01, recall_FRII_mean=0.9,
                       recall_FRII_std=0.01).to_csv(tmp_path / choice / "tables" / "summary.csv", index=False)
        pd.DataFrame([{"model": "tang2019", "kind": "scratch", "pretrained_on": "", "trained_on": "FIRST",
                       "survey": "FIRST", "variant": "ensemble(tang2019)", "accuracy": ensemble,
                       "accuracy_ci_low": ensemble - 0.03, "accuracy_ci_high": ensemble + 0.02}]).to_csv(
            tmp_path / choice / "tables" / "ensembles.csv", index=False)
    table = choice_table({"baseline": tmp_path / "baseline", "ema": tmp_path / "ema"}).set_index(["survey", "choice"])
    assert table.loc[("FIRST", "ema"), "test_recall_FRI_mean"] == pytest.approx(0.96)
    assert table.loc[("NVSS", "baseline"), "test_recall_FRII_mean"] == pytest.approx(0.9)
    assert table.loc[("FIRST", "ema"), "test_ensemble_accuracy"] == pytest.approx(0.97)
    assert np.isnan(table.loc[("NVSS", "ema"), "test_ensemble_accuracy"])  # no ensemble row for NVSS


def test_an_ablation_that_changes_the_network_picks_one_choice_per_survey_across_models(tmp_path):
    _planted_study(tmp_path / "baseline", {"FIRST": 0.90, "NVSS": 0.85}, {"FIRST": 0.95, "NVSS": 0.86},
                   {"FIRST": 0.8, "NVSS": 0.7})
    _planted_study(tmp_path / "d8", {"FIRST": 0.92, "NVSS": 0.84}, {"FIRST": 0.94, "NVSS": 0.90},
                   {"FIRST": 0.8, "NVSS": 0.7}, model="dn_equivariant")
    studies = {"baseline": tmp_path / "baseline", "d8": tmp_path / "d8"}
    table = choice_table(studies, "ablation", across_models=True)
    picked = table[table["picked_on_validation"]].set_index("survey")
    assert picked["ablation"].to_dict() == {"FIRST": "d8", "NVSS": "baseline"}
    assert picked.loc["FIRST", "model"] == "dn_equivariant"
    d8 = table[table["ablation"] == "d8"].set_index("survey")
    assert d8.loc["FIRST", "test_accuracy_change_vs_baseline"] == pytest.approx(0.94 - 0.95)  # against tang2019
    assert list(table["ablation"]) == ["baseline", "d8", "baseline", "d8"]  # per survey, in choice order
    # per variant (the default), each network is its own variant and so its only choice is picked
    assert table["picked_on_validation"].sum() == 2
    assert choice_table(studies, "ablation")["picked_on_validation"].sum() == 4


def test_a_choice_whose_study_left_only_tables_keeps_its_rows_from_the_table_it_replaces(tmp_path):
    for choice, val in (("baseline", 0.90), ("ema", 0.88)):
        _planted_study(tmp_path / choice, {"FIRST": val, "NVSS": val - 0.05}, {"FIRST": 0.95, "NVSS": 0.86},
                       {"FIRST": 0.8, "NVSS": 0.7})
    output = tmp_path / "ablation.csv"
    first = write_choice_table({"baseline": tmp_path / "baseline", "ema": tmp_path / "ema"}, output, "ablation")
    for path in (tmp_path / "baseline" / "evaluation").glob("**/*.csv"):  # a clone: the committed tables only
        path.unlink()
    _planted_study(tmp_path / "sigma2", {"FIRST": 0.93, "NVSS": 0.80}, {"FIRST": 0.90, "NVSS": 0.86},
                   {"FIRST": 0.8, "NVSS": 0.7})
    table = write_choice_table({"baseline": tmp_path / "baseline", "ema": tmp_path / "ema",
                                "sigma2": tmp_path / "sigma2"}, output, "ablation")
    kept = table[table["ablation"] == "baseline"].reset_index(drop=True)
    before = first[first["ablation"] == "baseline"].reset_index(drop=True)
    assert kept["val_loss_mean"].to_numpy() == pytest.approx(before["val_loss_mean"].to_numpy(), abs=1e-4)
    picked = table[table["picked_on_validation"]].set_index("survey")["ablation"].to_dict()
    assert picked == {"FIRST": "sigma2", "NVSS": "baseline"}
    assert table.set_index(["survey", "ablation"]).loc[("FIRST", "sigma2"), "test_accuracy_change_vs_baseline"] == \
        pytest.approx(-0.05)
    # without the previous table, the study without predictions is refused as before
    output.unlink()
    with pytest.raises(FileNotFoundError, match="extra_splits"):
        write_choice_table({"baseline": tmp_path / "baseline", "ema": tmp_path / "ema"}, output, "ablation")


def test_a_full_tie_on_validation_keeps_the_first_choice(tmp_path):
    for choice in ("false", "true"):
        _planted_study(tmp_path / choice, {"FIRST": 0.9, "NVSS": 0.9}, {"FIRST": 0.9, "NVSS": 0.9},
                       {"FIRST": 0.8, "NVSS": 0.8})
    table = choice_table({"false": tmp_path / "false", "true": tmp_path / "true"})
    assert set(table.loc[table["picked_on_validation"], "choice"]) == {"false"}


def test_a_study_without_validation_predictions_is_refused(tmp_path):
    _planted_study(tmp_path / "false", {"FIRST": 0.9, "NVSS": 0.9}, {"FIRST": 0.9, "NVSS": 0.9},
                   {"FIRST": 0.8, "NVSS": 0.8})
    for path in (tmp_path / "false" / "evaluation").glob("**/*.csv"):
        path.unlink()
    with pytest.raises(FileNotFoundError, match="extra_splits"):
        choice_table({"false": tmp_path / "false"})


def test_the_commands_write_both_tables(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps(PUBLISHED_JSON))
    CLEANED.to_csv(tmp_path / "summary.csv", index=False)
    assert cli.main(["cleaning-effect", "--published", str(tmp_path / "summary.json"), "--cleaned",
                     str(tmp_path / "summary.csv"), "--output", str(tmp_path / "effect.csv")]) == 0
    for choice in ("false", "true"):
        _planted_study(tmp_path / choice, {"FIRST": 0.9, "NVSS": 0.9}, {"FIRST": 0.9, "NVSS": 0.9},
                       {"FIRST": 0.8, "NVSS": 0.8})
    assert cli.main(["compare-choices", "--setting", "circular_mask", f"false={tmp_path / 'false'}",
                     f"true={tmp_path / 'true'}", "--output", str(tmp_path / "mask.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "effect.csv")) == 4 and len(pd.read_csv(tmp_path / "mask.csv")) == 4
    assert "written:" in capsys.readouterr().out
