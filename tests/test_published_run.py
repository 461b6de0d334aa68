"""The published run committed with the repository (dvc.lock and metrics/), checked without its data.

`dvc pull` (make pull) restores what dvc.lock names, and `dvc metrics show/diff` read metrics/
from git. Both must describe one and the same run, made with the configuration in the
repository: otherwise a pull would not match the config and Snakemake would retrain.
After changing config/published.yaml or the train/transfer/augment sections of
config/config.yaml, publish again (`make publish`, docs/dvc.md).
"""

from __future__ import annotations

import hashlib
import json

import yaml

from conftest import REPO

LOCK = REPO / "dvc.lock"


def read_yaml(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text()) or {}


def lock_stages() -> dict:
    return yaml.safe_load(LOCK.read_text())["stages"]


def test_lock_records_every_stage_of_dvc_yaml():
    assert set(lock_stages()) == set(read_yaml("dvc.yaml")["stages"])


def test_committed_metrics_are_the_ones_the_lock_records():
    outs = {entry["path"]: entry for entry in lock_stages()["metrics"]["outs"]}
    for name in ("metrics/summary.json", "metrics/training.json"):
        assert hashlib.md5((REPO / name).read_bytes()).hexdigest() == outs[name]["md5"], name


def test_lock_was_made_with_the_committed_configuration():
    params = lock_stages()["train"]["params"]
    study, published = read_yaml("config/config.yaml"), read_yaml("config/published.yaml")
    for section in ("augment", "train", "transfer"):
        assert params["config/config.yaml"][section] == study[section], \
            f"config/config.yaml: {section} changed since the published run: run `make publish`"
    assert (params.get("config/published.yaml") or {}) == published, \
        "config/published.yaml changed since the published run: run `make publish`"


def test_published_run_covers_the_full_sample_and_every_published_model():
    fetch_outs = {entry["path"]: entry for entry in lock_stages()["fetch"]["outs"]}
    surveys = read_yaml("config/config.yaml")["surveys"]
    catalogue_size = sum(1 for _ in open(REPO / "resources" / "catalogues" / "frdeep_v2.csv")) - 1
    # one FITS file per source and survey, plus one manifest and its report per survey
    assert fetch_outs["results/cutouts"]["nfiles"] >= catalogue_size * len(surveys)

    summary = json.loads((REPO / "metrics" / "summary.json").read_text())
    study = read_yaml("config/config.yaml")
    train = {**study["train"], **read_yaml("config/published.yaml").get("train", {})}
    for survey in surveys:
        for model in train["models"]:
            accuracy = summary[survey][model]["accuracy_mean"]
            assert 0.5 < accuracy <= 1.0, (survey, model, accuracy)
