"""The whole-config driver (rgmorph.study) plans what the workflow plans, with the same settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from rgmorph.study import (TrainJob, load_config, model_train_settings, parse_override, plan, run_study,
                           transfer_run_files, transfer_train_settings)
from rgmorph.train import TrainSettings
from conftest import REPO, write_synthetic_dataset


def test_the_paper_config_plans_every_variant_survey_and_transfer_direction():
    config = load_config([REPO / "config" / "config.yaml"])
    scratch, transfers = plan(config)
    assert len(scratch) == 7 * 2 and TrainJob("NVSS", "gabor_svm") in scratch
    assert len(transfers) == 6 * 2 and TrainJob("FIRST", "tang2019", "NVSS") in transfers
    assert TrainJob("FIRST", "vgg", "NVSS").folder == "FIRST/vgg/transfer-from-NVSS"
    assert config["train"]["seeds"] == [0, 1, 2, 3, 4]
    files = transfer_run_files(config, "results", "metrics.json")
    assert len(files) == 6 * 2 * 5 and "results/evaluation/FIRST/lenet/transfer-from-NVSS/seed4/metrics.json" in files


def test_settings_merge_defaults_per_model_options_and_transfer_overrides(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"train": {"per_model": {"vgg": {"learning_rate": 0.0002}},
                                               "model_options": {"vgg": {"hidden": 64}}},
                                     "transfer": {"per_model": {"vgg": {"epochs": 7}}}}))
    config = load_config([REPO / "config" / "config.yaml", extra], parse_override("train.epochs=11"))
    vgg = TrainSettings.from_mapping(model_train_settings(config, "vgg"))
    assert vgg.learning_rate == 0.0002 and vgg.epochs == 11 and vgg.model_options == {"hidden": 64}
    assert vgg.batch_norm_statistics == "recomputed"  # a schema default, filled in
    assert TrainSettings.from_mapping(model_train_settings(config, "dn_equivariant")).test_time_augmentation == "none"
    fine_tuning = TrainSettings.from_mapping(transfer_train_settings(config, "vgg"))
    assert fine_tuning.epochs == 7 and fine_tuning.learning_rate == config["transfer"]["learning_rate"]
    assert TrainSettings.from_mapping(transfer_train_settings(config, "lenet")).epochs == config["transfer"]["epochs"]


def test_overrides_read_values_as_yaml():
    assert parse_override("train.cuda_graphs=false") == {"train": {"cuda_graphs": False}}
    assert parse_override("train.seeds=[0, 1]") == {"train": {"seeds": [0, 1]}}


@pytest.mark.slow
def test_the_paper_config_trains_evaluates_and_tabulates_every_variant_and_transfer_run(tmp_path):
    """Every variant on both surveys and every transfer direction, through to the tables: the paper
    config with one seed, one epoch and tiny synthetic surveys at the real image size (150 pixels)."""
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    for survey, pixel_scale, seed in (("FIRST", 1.8, 0), ("NVSS", 15.0, 1)):
        path = write_synthetic_dataset(datasets / f"{survey}.npz", per_class=12, size=150, seed=seed)
        with np.load(path) as stored:
            arrays = dict(stored)
        arrays.update(survey=np.array(survey), pixel_scale_arcsec=np.full(len(arrays["labels"]), pixel_scale))
        np.savez_compressed(path, **arrays)
    config = load_config([REPO / "config" / "config.yaml"],
                         {"train": {"seeds": [0], "epochs": 1, "threads": 1}, "transfer": {"epochs": 1}})

    outcome = run_study(config, datasets, tmp_path / "study", gpu_jobs=1, cpu_jobs=2)

    assert outcome["failures"] == []
    summary = outcome["summary"]
    scratch = summary[summary["mode"] == "scratch"]
    assert sorted(zip(scratch["model"], scratch["survey"])) == sorted(
        (model, survey) for model in config["train"]["models"] for survey in ("FIRST", "NVSS"))
    transfer = summary[summary["mode"] == "transfer"]
    assert sorted(zip(transfer["model"], transfer["pretrained_on"], transfer["survey"])) == sorted(
        (model, direction["from"], direction["to"]) for model in config["transfer"]["models"]
        for direction in config["transfer"]["directions"])
    assert (summary["seeds"] == 1).all() and summary["accuracy_mean"].between(0, 1).all()
    assert outcome["runs"] == 7 * 2 + 6 * 2
    main_table = pd.read_csv(tmp_path / "study" / "tables" / "main_table.csv")
    assert sorted(zip(main_table["model"], main_table["survey"])) == sorted(zip(scratch["model"], scratch["survey"]))
    transfer_table = pd.read_csv(tmp_path / "study" / "tables" / "transfer_table.csv")
    assert (transfer_table["mode"] == "transfer").sum() == 6 * 2
