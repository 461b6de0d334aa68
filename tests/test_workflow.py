"""The Snakemake workflow end to end on a tiny config, plus lint and the full config's plan."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


# config/config.yaml reads ../shared/skyview-mirror; its plan needs only a mirror holding both surveys
BUNDLED_MIRROR = {**os.environ, "RGMORPH_SKYVIEW_MIRROR": str(QUICKSTART_MIRROR)}


def _snakemake(*arguments, check=True, env=None):
    result = subprocess.run([*SNAKEMAKE, *arguments], cwd=REPO, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workflow")
    catalogue = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str)
    # three sources per (class, split): both classes reach every stage
    tiny = catalogue.groupby(["fr_class", "split"]).head(3)
    tiny.to_csv(folder / "catalogue.csv", index=False)
    config = {
        "results_dir": str(folder / "results"),
        "catalogue": {"path": str(folder / "catalogue.csv")},
        "fetch": {"source": "mirror", "mirror_dir": str(QUICKSTART_MIRROR)},
        "train": {"models": ["tang2019"], "seeds": [0], "epochs": 1, "threads": 1},
        "transfer": {"models": ["tang2019"], "epochs": 1},  # both directions (the schema's default), one epoch
        "figures": {"gallery_per_class": 2},
    }
    config_path = folder / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    _snakemake("--cores", "2", "--configfile", str(config_path))
    return folder / "results", config_path, len(tiny)


def test_every_output_exists_and_parses(tiny_run):
    results, _, sources = tiny_run
    assert len(pd.read_csv(results / "catalogue" / "sources.csv")) == sources
    for survey in ("FIRST", "NVSS"):
        manifest = pd.read_csv(results / "cutouts" / survey / "manifest.csv")
        assert len(manifest) == sources and set(manifest["status"]) == {"ok"}
        assert len(list((results / "cutouts" / survey).glob("*.fits"))) == sources
        with __import__("numpy").load(results / "datasets" / f"{survey}.npz") as dataset:
            assert dataset["images"].shape == (sources, 150, 150)
        run = results / "models" / survey / "tang2019" / "seed0"
        assert len(pd.read_csv(run / "history.csv")) == 1
        assert (run / "checkpoint.pt").stat().st_size > 100_000
        metrics = json.loads((results / "evaluation" / survey / "tang2019" / "seed0" / "metrics.json").read_text())
        assert metrics["n_samples"] == 6 and 0.0 <= metrics["accuracy"] <= 1.0
        predictions = pd.read_csv(results / "evaluation" / survey / "tang2019" / "seed0" / "predictions.csv")
        assert len(predictions) == 6
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert sorted(zip(summary["survey"], summary["kind"])) == [("FIRST", "scratch"), ("FIRST", "transfer"),
                                                               ("NVSS", "scratch"), ("NVSS", "transfer")]
    assert set(summary["seeds"]) == {1}
    transfer = json.loads((results / "evaluation" / "FIRST" / "tang2019" / "transfer-from-NVSS" / "seed0" /
                           "metrics.json").read_text())["run"]
    assert transfer["kind"] == "transfer" and transfer["trained_on"] == "NVSS" and transfer["frozen"] == ["features"]
    # the referee's tables: one pair per survey (scratch vs transfer), accuracy by input catalogue
    pairs = pd.read_csv(results / "tables" / "paired_comparisons.csv")
    assert sorted(pairs["survey"]) == ["FIRST", "NVSS"] and set(pairs["n_sources"]) == {6}
    confounds = pd.read_csv(results / "tables" / "confounds.csv")
    overall = confounds[(confounds["grouping"] == "all") & (confounds["class_name"] == "all")]
    assert len(overall) == 4 and set(overall["n_sources"]) == {6}
    assert set(confounds.loc[confounds["grouping"] == "redshift", "group"]) == {"unknown"}  # no z carried
    for name in ("gallery", "preprocessing", "augmentation", "learning_curves", "confusion_matrices", "roc_curves",
                 "confounds"):
        png, pdf = results / "figures" / f"{name}.png", results / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert pdf.read_bytes()[:5] == b"%PDF-", name
    for log in ("catalogue.log", "fetch/FIRST.log", "train/NVSS/tang2019/seed0.log"):
        assert (results / "logs" / log).stat().st_size > 0


def test_a_second_run_has_nothing_to_do(tiny_run):
    _, config_path, _ = tiny_run
    result = _snakemake("-n", "--cores", "1", "--configfile", str(config_path))
    assert "Nothing to be done" in result.stdout + result.stderr


def test_lint_is_clean():
    result = _snakemake("--lint", "--configfile", "config/quickstart.yaml", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Congratulations, your workflow is in a good condition!" in output, output[-4000:]


def test_full_config_plans_every_stage(tmp_path):
    result = _snakemake("-n", "--quiet", "rules", "--configfile", "config/config.yaml",
                        "--config", f"results_dir={tmp_path}", env=BUNDLED_MIRROR)
    counts = dict(line.split()[:2] for line in result.stdout.splitlines() if line[:1].isalpha() and line.split()[-1].isdigit())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    runs = len(config["surveys"]) * len(config["train"]["models"]) * len(config["train"]["seeds"])
    assert counts["fetch"] == "2" and counts["preprocess"] == "2"
    # one training job per (survey, model) trains all its seeds; each seed is evaluated on its own
    assert counts["train"] == str(len(config["surveys"]) * len(config["train"]["models"]))
    assert counts["evaluate"] == str(runs)
    transfers = len(config["transfer"]["models"]) * len(config["transfer"]["directions"])
    assert counts["train_transfer"] == str(transfers)
    assert counts["evaluate_transfer"] == str(transfers * len(config["train"]["seeds"]))
    assert {"catalogue", "summarise", "figure_gallery", "figure_roc_curves"} <= set(counts)


def test_full_config_catalogue_has_all_658_sources(tmp_path):
    _snakemake(f"{tmp_path}/catalogue/sources.csv", "--cores", "1", "--configfile", "config/config.yaml",
               "--config", f"results_dir={tmp_path}", env=BUNDLED_MIRROR)
    assert len(pd.read_csv(tmp_path / "catalogue" / "sources.csv")) == 658


def test_bad_config_value_is_refused_before_any_work(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"results_dir": str(tmp_path), "train": {"epochs": 0}}))
    result = _snakemake("-n", "--configfile", str(bad), check=False)
    output = result.stdout + result.stderr  # snakemake prints config errors on stdout
    assert result.returncode != 0
    assert "train.epochs" in output, output[-2000:]
