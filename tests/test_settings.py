"""A study is one config file: what it plans, with which settings, and the paper config through Snakemake."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO
from rgmorph import settings
from rgmorph.layout import Run


def test_the_paper_config_plans_every_variant_survey_and_transfer_direction():
    config = settings.load([REPO / "config" / "config.yaml"])
    scratch, transfers = settings.scratch_runs(config), settings.transfer_runs(config)
    assert len(scratch) == 7 * 2 * 5 and Run("NVSS", "gabor_svm", 4) in scratch
    assert len(transfers) == 6 * 2 * 5 and Run("FIRST", "tang2019", 0, "NVSS") in transfers
    assert Run("FIRST", "lenet", 4, "NVSS").file("results", "metrics.json") == \
        "results/evaluation/FIRST/lenet/transfer-from-NVSS/seed4/metrics.json"


def test_a_run_reads_back_from_its_path_with_its_kind():
    for run in (Run("FIRST", "vgg", 3), Run("NVSS", "resnet", 0, "FIRST")):
        for name in ("checkpoint.pt", "history.csv", "metrics.json", "predictions.csv"):
            assert Run.from_path(run.file("some/results", name)) == run
    assert Run("NVSS", "resnet", 0, "FIRST").kind == "transfer" and Run("FIRST", "vgg", 3).kind == "scratch"
    assert Run("NVSS", "resnet", 0, "FIRST").pretrained() == Run("FIRST", "resnet", 0)
    with pytest.raises(ValueError, match="not a per-run file"):
        Run.from_path("results/tables/runs.csv")


def test_one_survey_study_inherits_nothing_and_has_no_transfer_runs(tmp_path):
    study = tmp_path / "first_only.yaml"
    study.write_text(yaml.safe_dump({"surveys": {"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)"}},
                                     "train": {"models": ["tang2019", "lenet"]},
                                     "transfer": {"models": ["tang2019"]}}))
    config = settings.load([study])
    assert settings.transfer_runs(config) == [] and {run.survey for run in settings.all_runs(config)} == {"FIRST"}
    assert config["train"]["epochs"] == 60 and config["train"]["seeds"] == [0, 1, 2]  # the schema's defaults
    plan = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(study)], cwd=REPO,
                          capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr[-3000:]
    # a 'reason:' line quotes an earlier run's params when results/ already holds outputs
    planned = "\n".join(line for line in plan.stdout.splitlines() if "reason:" not in line)
    assert "NVSS" not in planned and "train_transfer" not in planned and "FIRST" in planned


def test_settings_merge_defaults_per_model_options_and_transfer_overrides(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"train": {"per_model": {"vgg": {"learning_rate": 0.0002}},
                                               "model_options": {"vgg": {"hidden": 64}}},
                                     "transfer": {"per_model": {"vgg": {"epochs": 7}}}}))
    config = settings.load([REPO / "config" / "config.yaml", extra], {"train": {"epochs": 11}})
    vgg = settings.model_settings(config, "vgg")
    assert vgg["learning_rate"] == 0.0002 and vgg["epochs"] == 11 and vgg["model_options"] == {"hidden": 64}
    assert vgg["batch_norm_statistics"] == "recomputed"  # a schema default, filled in
    assert settings.model_settings(config, "dn_equivariant")["test_time_augmentation"] == "none"
    fine_tuning = settings.transfer_settings(config, "vgg")
    assert fine_tuning["epochs"] == 7 and fine_tuning["learning_rate"] == config["transfer"]["learning_rate"]
    assert settings.transfer_settings(config, "lenet")["epochs"] == config["transfer"]["epochs"]


@pytest.mark.slow
def test_the_paper_config_trains_evaluates_and_tabulates_every_variant_and_transfer_run(tmp_path):
    """Every variant on both surveys and every transfer direction, through Snakemake to the tables: the paper
    config with one seed and one epoch, on 32 real sources of the bundled sample."""
    # 8 per (class, split): the Gabor SVM calibrates its probabilities with 5 folds of each class
    catalogue = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str).groupby(["fr_class", "split"]).head(8)
    catalogue.to_csv(tmp_path / "catalogue.csv", index=False)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({
        "results_dir": str(tmp_path / "results"), "catalogue": {"path": str(tmp_path / "catalogue.csv")},
        "fetch": {"mirror_dir": str(QUICKSTART_MIRROR)},
        "train": {"seeds": [0], "epochs": 1, "threads": 1}, "transfer": {"epochs": 1}}))
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/config.yaml", str(overlay),
               "--", str(tmp_path / "results" / "tables" / "transfer_table.csv")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-6000:]

    config = settings.load([REPO / "config" / "config.yaml", overlay])
    summary = pd.read_csv(tmp_path / "results" / "tables" / "summary.csv", keep_default_na=False)
    scratch, transfer = summary[summary["kind"] == "scratch"], summary[summary["kind"] == "transfer"]
    assert sorted(zip(scratch["model"], scratch["survey"])) == sorted(
        (model, survey) for model in config["train"]["models"] for survey in ("FIRST", "NVSS"))
    assert sorted(zip(transfer["model"], transfer["pretrained_on"], transfer["survey"])) == sorted(
        (model, direction["from"], direction["to"]) for model in config["transfer"]["models"]
        for direction in config["transfer"]["directions"])
    assert (summary["seeds"] == 1).all() and summary["accuracy_mean"].between(0, 1).all()
    main_table = pd.read_csv(tmp_path / "results" / "tables" / "main_table.csv")
    assert sorted(zip(main_table["model"], main_table["survey"])) == sorted(zip(scratch["model"], scratch["survey"]))


def test_transfer_config_problems_are_named():
    from rgmorph import models
    from rgmorph.config_check import transfer_problems

    problems = transfer_problems({"models": ["vgg16", "gabor_svm"], "directions": [{"from": "NVSS", "to": "NVSS"}]},
                                 models.variants(), models.available())
    assert problems[1:] == [
        "config key transfer.models: 'gabor_svm' is not a network, so it cannot be fine-tuned",
        "config key transfer.directions: from and to are both 'NVSS'",
    ]
    assert problems[0].startswith("config key transfer.models: unknown model 'vgg16' (did you mean 'vgg'?)")


def test_transfer_models_not_trained_and_surveys_not_listed_are_skipped():
    config = {"train": {"models": ["tang2019", "lenet"]}, "surveys": {"FIRST": {}, "NVSS": {}},
              "transfer": {"models": ["tang2019", "vgg"], "directions": [{"from": "NVSS", "to": "FIRST"},
                                                                         {"from": "VLASS", "to": "FIRST"}]}}
    assert settings.transfer_plan(config) == (["tang2019"], [("NVSS", "FIRST")])
    config["surveys"] = {"FIRST": {}}  # one survey: nothing to transfer between
    assert settings.transfer_plan(config) == ([], [])
    assert settings.per_model({"default": ["features"], "dn_equivariant": ["lift"]}, "dn_equivariant") == ["lift"]
    assert settings.per_model({"default": ["features"]}, "vgg") == ["features"] and settings.per_model({}, "vgg") == []
