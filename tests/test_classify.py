"""Classify study end to end: a tiny model trained here, then an unlabelled catalogue (split removed, the label
only carried for classify.check; one position the mirror does not hold) classified in 2 shards; columns,
probabilities, entropy, the missing source, the OOD threshold, the check against the study's test sources,
and resuming after deleting the final table and one shard."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO
from rgmorph import classify, classify_check, layout
from rgmorph.batched import D4Average, d4_views
from rgmorph.dataset import load_dataset
from rgmorph.train import load_checkpoint, predict_logits

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
SEEDS = [0, 1]
MISSING = "NOWHERE J0000-8000"  # FIRST never observed this far south: not in the mirror
CHECK_GROUPS = {"FRI": {"fr_class": ["FRI"]}, "FRII": {"fr_class": ["FRII"]}}


def _snakemake(*arguments):
    result = subprocess.run([*SNAKEMAKE, *arguments], cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def _planned_jobs(config_path) -> dict:
    result = _snakemake("-n", "--quiet", "rules", "--configfile", str(config_path))
    return {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()
            if line[:1].isalpha() and len(line.split()) == 2 and line.split()[1].isdigit()}


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classify")
    catalogue = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str)
    training = catalogue.groupby(["fr_class", "split"]).head(5)
    training.to_csv(folder / "training.csv", index=False)
    train_config = {
        "results_dir": str(folder / "study"),
        "catalogue": {"path": str(folder / "training.csv")},
        "surveys": {"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)", "pixels": 150}},
        "fetch": {"source": "mirror", "mirror_dir": str(QUICKSTART_MIRROR)},
        "train": {"models": ["tang2019"], "seeds": SEEDS, "epochs": 1, "threads": 1, "validation_fraction": 0.4},
        "transfer": {"models": []},
    }
    (folder / "train.yaml").write_text(yaml.safe_dump(train_config))
    checkpoints = classify.checkpoint_paths(folder / "study", "FIRST", "tang2019", SEEDS)
    _snakemake("--cores", "2", *checkpoints, "--configfile", str(folder / "train.yaml"))

    # unlabelled: sources training never saw (4 of the study's test split, 4 outside the study), split removed,
    # fr_class only carried (the check's hidden label), plus one position no mirror holds
    study_sources = pd.read_csv(layout.sources(folder / "study"), dtype=str)
    tested = study_sources[study_sources["split"] == "test"].groupby("class_name").head(2)["name"]
    unseen = catalogue[~catalogue["name"].isin(training["name"])].head(4)
    unlabelled = pd.concat([catalogue[catalogue["name"].isin(tested)], unseen]).drop(columns=["split"])
    unlabelled = pd.concat([unlabelled, pd.DataFrame([{"name": MISSING, "ra": "00 00 00.0", "dec": "-80 00 00",
                                                       "z": "0.5", "fr_class": ""}])], ignore_index=True)
    unlabelled.to_csv(folder / "unlabelled.csv", index=False)
    config = {"classify": {
        "catalogue": {"path": str(folder / "unlabelled.csv")},
        "study": {"results_dir": str(folder / "study"), "survey": "FIRST", "model": "tang2019", "seeds": SEEDS},
        "results_dir": str(folder / "out"),
        "shard_size": 5,  # 9 sources: 2 shards
        "fetch": {"source": "mirror", "mirror_dir": str(QUICKSTART_MIRROR), "retries": 0},
        "check": {"label_column": "fr_class", "groups": CHECK_GROUPS, "bootstrap_resamples": 50},
    }}
    config_path = folder / "classify.yaml"
    config_path.write_text(yaml.safe_dump(config))
    _snakemake("--cores", "2", "--configfile", str(config_path))
    out = folder / "out" / "classify"
    return {"folder": folder, "out": out, "config": config_path, "unlabelled": unlabelled, "tested": tested.tolist(),
            "checkpoints": checkpoints, "table": pd.read_csv(out / "classifications.csv")}


def test_every_column_and_the_probabilities(classified):
    table, unlabelled = classified["table"], classified["unlabelled"]
    assert list(table.columns) == [
        "name", "ra_deg", "dec_deg", "z", "fr_class", "status", "reason", "predicted_class", "prob_FRI", "prob_FRII",
        "prob_FRI_std", "prob_FRII_std", "entropy", "ood_score", "ood_threshold", "ood_flag", "n_seeds"]
    assert table["name"].tolist() == unlabelled["name"].tolist()  # every source, in catalogue order
    assert table["z"].astype(str).tolist() == unlabelled["z"].astype(str).tolist()  # carried through
    done = table[table["status"] == "classified"]
    assert len(done) == 8
    probabilities = done[["prob_FRI", "prob_FRII"]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert (done[["prob_FRI_std", "prob_FRII_std"]].to_numpy() >= 0).all()
    hand = -(probabilities * np.log(probabilities)).sum(axis=1)
    assert np.allclose(done["entropy"], hand, atol=1e-6) and (done["entropy"] <= np.log(2) + 1e-9).all()
    assert done["predicted_class"].tolist() == np.array(["FRI", "FRII"])[probabilities.argmax(axis=1)].tolist()
    assert set(done["n_seeds"]) == {len(SEEDS)}
    assert (done["ood_flag"].astype(str).str.lower() == (done["ood_score"] > done["ood_threshold"]).astype(str)
            .str.lower()).all()
    summary = classify.summary(table)
    assert summary["sources"] == 9 and summary["classified"] == 8 and summary["not_classified"] == {"failed": 1}


def test_the_unfetchable_source_is_listed_with_its_reason(classified):
    row = classified["table"].set_index("name").loc[MISSING]
    assert row["status"] == "failed" and "no 'VLA FIRST (1.4 GHz)' cutout" in row["reason"]
    for column in ("prob_FRI", "prob_FRII", "prob_FRI_std", "prob_FRII_std", "entropy", "ood_score", "ood_flag",
                   "predicted_class"):
        assert pd.isna(row[column]), column


def test_ood_threshold_is_the_95th_percentile_of_validation_energies(classified):
    study = classified["folder"] / "study"
    dataset = load_dataset(layout.dataset(study, "FIRST"))
    names = dataset["names"].tolist()
    energies = {}
    for path in classified["checkpoints"]:
        model, checkpoint = load_checkpoint(path)
        rows = [names.index(name) for name in checkpoint["validation_names"]]
        assert rows
        logits = predict_logits(model, torch.from_numpy(dataset["images"][rows]).unsqueeze(1))
        for name, energy in zip(checkpoint["validation_names"], (-torch.logsumexp(logits, dim=1)).tolist()):
            energies.setdefault(name, []).append(energy)
    expected = np.percentile([np.mean(values) for values in energies.values()], 95)
    table = classified["table"]
    done = table[table["status"] == "classified"]
    assert np.allclose(done["ood_threshold"], expected, rtol=1e-6)
    record = yaml.safe_load((classified["out"] / "ood_threshold.json").read_text())
    assert record["threshold"] == pytest.approx(expected, rel=1e-6) and record["percentile"] == 95
    assert record["validation_sources"] == len(energies)


def test_the_check_against_the_study_test_sources(classified):
    check = pd.read_csv(classified["out"] / "ood_check.csv").set_index("group")
    assert check.index.tolist() == ["reference", "FRI", "FRII"]
    table = classified["table"]
    done = table[table["status"] == "classified"]
    reference = done[done["name"].isin(classified["tested"])]
    assert check.loc["reference", "n"] == len(classified["tested"]) == 4
    agreed = reference["predicted_class"] == reference["fr_class"]
    assert check.loc["reference", "agreement"] == pytest.approx(agreed.mean())
    for group in ("FRI", "FRII"):
        rows = done[done["fr_class"] == group]
        flagged = rows["ood_flag"].astype(str).str.lower().eq("true")
        assert check.loc[group, "n"] == len(rows) and check.loc[group, "ood_flag_rate"] == pytest.approx(flagged.mean())
        assert check.loc[group, "auroc_ood_score"] == pytest.approx(
            classify_check.auroc(reference["ood_score"].to_numpy(), rows["ood_score"].to_numpy()))


def test_scores_of_a_d4_checkpoint(classified):
    """A D4 test-time-averaged model: probabilities as predict_logits gives them, energy from the views' logits."""
    model, _ = load_checkpoint(classified["checkpoints"][0])
    images = torch.from_numpy(load_dataset(classified["out"] / "shards" / "0" / "images.npz")["images"][:3])
    averaged = D4Average(model).eval()
    probabilities, energy = classify.score(averaged, images)
    expected = torch.softmax(predict_logits(averaged, images.unsqueeze(1)), dim=1).double().numpy()
    assert np.allclose(probabilities, expected, atol=1e-6)
    views = [predict_logits(model, view) for view in d4_views(images.unsqueeze(1))]
    assert np.allclose(energy, torch.stack([-torch.logsumexp(v, dim=1) for v in views]).mean(0).numpy(), atol=1e-5)


def test_resume_redoes_only_what_is_missing(classified):
    out, config_path = classified["out"], classified["config"]
    kept = [out / "shards" / "0" / name for name in ("classifications.csv", "images.npz", "cutouts/manifest.csv")]
    mtimes = [path.stat().st_mtime_ns for path in kept]
    assert _planned_jobs(config_path) == {}  # nothing to do
    (out / "classifications.csv").unlink()
    (out / "shards" / "1" / "classifications.csv").unlink()
    assert _planned_jobs(config_path) == {"classify_shard": 1, "classify_collect": 1, "classify_check": 1,
                                          "classify_all": 1, "total": 4}
    _snakemake("--cores", "2", "--configfile", str(config_path))
    assert [path.stat().st_mtime_ns for path in kept] == mtimes  # the untouched shard was not redone
    pd.testing.assert_frame_equal(pd.read_csv(out / "classifications.csv"), classified["table"])


def test_cli_help_says_how_to_run_it(capsys):
    from rgmorph.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["classify", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "rgmorph classify my_sources.csv" in text and "classifications.csv" in text and "--mirror" in text
