"""Pretrained models shipped in resources/models (issue 27): their files match their cards, they load as
tensors only, `rgmorph classify` uses them with no study trained here, and `rgmorph models export`
regenerates a model folder from a study's results."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

import tiny_results
from conftest import FULL_CATALOGUE, QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO
from rgmorph import cli, shipped
from rgmorph.checkpoint import load_safely

SHIPPED = ("frdeep-first-tang2019", "frdeep-nvss-tang2019", "mirabest-first-tang2019")


def test_every_shipped_file_matches_the_sha256_of_its_card():
    models = {model.name: model for model in shipped.available()}
    assert set(SHIPPED) <= set(models)
    for model in models.values():
        assert model.problems() == []
        assert len(model.card["files"]) == len(model.card["seeds"]) == 5
        assert model.card["test_metrics"]["accuracy"]["ci_low"] < model.card["test_metrics"]["accuracy"]["mean"]
        assert (model.folder / "MODEL_CARD.md").read_text().startswith(f"# {model.card['title']}")


def test_shipped_checkpoints_load_as_tensors_only_and_are_small():
    total = 0
    for model in shipped.available():
        for path in model.checkpoint_paths():
            checkpoint = load_safely(path)  # weights_only: no pickled code runs
            assert checkpoint["model_name"] == model.card["model"]
            total += (model.folder / path).stat().st_size
    assert total < 16e6


def test_a_changed_file_is_named(tmp_path):
    model = shipped.ShippedModel.load(SHIPPED[0])
    copy = tmp_path / model.name
    copy.mkdir()
    for name in [*model.card["files"], shipped.CARD]:
        (copy / name).write_bytes((model.folder / name).read_bytes())
    first = next(iter(model.card["files"]))
    data = bytearray((copy / first).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of the weights flipped
    (copy / first).write_bytes(bytes(data))
    with pytest.raises(shipped.ShippedModelError, match=f"{first}: sha256 .* differs from the card's"):
        shipped.ShippedModel.load(copy).verified()


def test_an_unknown_model_lists_the_known_ones():
    with pytest.raises(shipped.ShippedModelError, match="known: .*frdeep-first-tang2019"):
        shipped.ShippedModel.load("no-such-model")


@pytest.fixture(scope="module")
def classified_with_shipped(tmp_path_factory):
    """The quick-start sources in FRDEEP's test split, labels removed, classified with the shipped FIRST models."""
    folder = tmp_path_factory.mktemp("shipped")
    quickstart = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str)
    published_split = pd.read_csv(FULL_CATALOGUE, dtype=str).set_index("name")["split"]
    test = quickstart[quickstart["name"].map(published_split) == "test"]
    test.drop(columns=["fr_class", "split"]).to_csv(folder / "sources.csv", index=False)
    code = cli.main(["classify", str(folder / "sources.csv"), "--survey", "FIRST", "--mirror", str(QUICKSTART_MIRROR),
                     "--output", str(folder / "out")])
    assert code == 0
    return test, pd.read_csv(folder / "out" / "classify" / "classifications.csv"), folder


def test_classify_with_the_shipped_frdeep_models_agrees_with_the_hidden_labels(classified_with_shipped):
    hidden, table, _ = classified_with_shipped
    assert sorted(table["name"]) == sorted(hidden["name"])
    assert (table["status"] == "classified").all()
    merged = table.merge(hidden[["name", "fr_class"]], on="name")
    agreement = (merged["predicted_class"] == merged["fr_class"]).mean()
    assert agreement >= 0.85, agreement  # the card's test accuracy is 0.94 +/- 0.02 on all 198 test sources


def test_the_shipped_models_never_selected_on_these_sources(classified_with_shipped):
    hidden, _, folder = classified_with_shipped
    model = shipped.ShippedModel.load(SHIPPED[0])
    for path in model.checkpoint_paths():
        assert not set(load_safely(path)["validation_names"]) & set(hidden["name"])
    threshold = json.loads((folder / "out" / "classify" / "ood_threshold.json").read_text())
    assert threshold["threshold"] == model.card["ood"]["threshold"]
    assert threshold["shipped_model"] == model.name


def test_models_lists_the_shipped_models(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SHIPPED)
    assert "every file matches the sha256 of its card" in out


def test_export_regenerates_a_model_folder_from_a_study(tmp_path):
    tree = tiny_results.shared()
    config = {"results_dir": str(tree["results"]), "catalogue": {"path": str(tree["results"].parent / "catalogue.csv")},
              "surveys": {"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)", "pixels": 96}},
              "train": {"models": ["tang2019"], "seeds": list(tiny_results.SEEDS), "epochs": 1}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    text = {key: f"{key} of the tiny study" for key in ("title", "training_data", "intended_use")}
    entry = {**text, "configs": [str(tmp_path / "study.yaml")], "survey": "FIRST", "model": "tang2019",
             "failure_cases": ["synthetic images"], "references": ["none"]}
    (tmp_path / "models.yaml").write_text(yaml.safe_dump({"models": {"tiny": entry}}))
    model = shipped.export("tiny", tmp_path / "models.yaml", tmp_path / "models")
    # scored afresh on the shipped files, as the study's own evaluate and summarise steps scored them
    summary = pd.read_csv(tree["summary"]).query("survey == 'FIRST'").iloc[0]
    for metric in ("accuracy", "auroc"):
        for part in ("mean", "std", "ci_low", "ci_high"):
            assert model.card["test_metrics"][metric][part] == pytest.approx(summary[f"{metric}_{part}"], abs=1e-4)
    assert sorted(model.card["files"]) == [f"seed{seed}.pt" for seed in tiny_results.SEEDS]
    assert model.card["ood"]["validation_sources"] > 0
    # a second export replaces the folder whole: nothing stale is left beside it
    (model.folder / "stale.txt").write_text("x")
    again = shipped.export("tiny", tmp_path / "models.yaml", tmp_path / "models")
    assert not (again.folder / "stale.txt").exists()
    assert again.card == model.card
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["tiny"]


def test_the_registry_names_a_default_model_for_first_and_nvss():
    assert shipped.default_for("FIRST") == "frdeep-first-tang2019"
    assert shipped.default_for("NVSS") == "frdeep-nvss-tang2019"
    with pytest.raises(shipped.ShippedModelError, match="no shipped model is the default for survey 'LoTSS'"):
        shipped.default_for("LoTSS")
    assert REPO / "resources" / "models" == shipped.MODELS_DIR
