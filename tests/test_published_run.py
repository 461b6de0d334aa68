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
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    study = read_yaml("config/config.yaml")
    surveys = study["surveys"]
    catalogue_size = sum(1 for _ in open(REPO / "resources" / "catalogues" / "frdeep_v2.csv")) - 1
    # one FITS file per source and survey, plus one manifest and its report per survey
    assert fetch_outs["results/cutouts"]["nfiles"] >= catalogue_size * len(surveys)

    summary = json.loads((REPO / "metrics" / "summary.json").read_text())
    train = {**study["train"], **read_yaml("config/published.yaml").get("train", {})}
    for survey in surveys:
        for model in train["models"]:
            accuracy = summary[survey][model]["accuracy_mean"]
            assert 0.5 < accuracy <= 1.0, (survey, model, accuracy)


def test_pull_without_the_published_remote_stops_with_advice_and_touches_nothing(tmp_path):
    clone = tmp_path / "clone"
    for name in ("dvc.yaml", "dvc.lock", ".dvc/config", "scripts/dvc-pull.sh", "config/config.yaml",
                 "config/published.yaml"):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, clone / name)
    subprocess.run(["git", "init", "-q"], cwd=clone, check=True)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1"}
    # the default remote, ../rgmorph-dvc-remote beside the clone, does not exist here
    result = subprocess.run(["bash", "scripts/dvc-pull.sh"], cwd=clone, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "dvc remote modify --local local url" in result.stderr
    assert not (clone / "results" / "models").exists() and not (clone / ".snakemake").exists()
