"""The whole-config driver (rgmorph.study) plans what the workflow plans, with the same settings."""

from __future__ import annotations

import yaml

from rgmorph.study import (TrainJob, load_config, model_train_settings, parse_override, plan, transfer_run_files,
                           transfer_train_settings)
from rgmorph.train import TrainSettings
from conftest import REPO


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
