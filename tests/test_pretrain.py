"""Self-supervised pre-training (rgmorph.pretrain): the pool leaves out every test source, the loss is SimCLR's,
the same seed gives the same network, and a study starts each seed from its pre-trained trunk."""

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import QUICKSTART_MIRROR, REPO
from rgmorph.pretrain import PretrainSettings, build_pool, near, nt_xent, pool_images, simclr, held_out_positions

SKYVIEW_FIRST = "VLA FIRST (1.4 GHz)"
FRDEEP = REPO / "resources" / "catalogues" / "frdeep_v2.csv"


def _quickstart_sources():
    """The quick-start catalogue as catalogue/sources.csv has it (decimal degrees)."""
    index = pd.read_csv(QUICKSTART_MIRROR / "index.csv")
    first = index[index["survey"] == SKYVIEW_FIRST].reset_index(drop=True)
    return pd.DataFrame({"name": [f"s{k}" for k in range(len(first))], "ra_deg": first["ra_deg"],
                         "dec_deg": first["dec_deg"], "split": ["test" if k % 3 == 0 else "train"
                                                                for k in range(len(first))]})


def test_the_pool_leaves_out_every_test_source_of_the_study_and_of_the_excluded_catalogues():
    sources = _quickstart_sources()
    exclude = [{"path": str(FRDEEP), "select": {"split": ["test"]}}]  # sexagesimal positions
    pool, dropped = build_pool([QUICKSTART_MIRROR], SKYVIEW_FIRST, sources, exclude, 30.0)
    tests = held_out_positions(sources, exclude)
    assert len(tests) == (sources["split"] == "test").sum() + (pd.read_csv(FRDEEP)["split"] == "test").sum()
    assert not near(pool, tests, 30.0).any()
    assert len(pool) + dropped == len(sources)  # one FIRST cutout per quick-start source
    own_tests = sources[sources["split"] == "test"].rename(columns={"ra_deg": "ra", "dec_deg": "dec"})
    assert dropped >= len(own_tests)
    assert set(pool.columns) == {"name", "ra", "dec", "file", "sha256"}


def test_a_pool_of_test_sources_only_and_a_missing_column_are_refused_by_name(tmp_path):
    sources = _quickstart_sources().assign(split="test")
    with pytest.raises(ValueError, match="every one of the .* cutouts is a test source"):
        build_pool([QUICKSTART_MIRROR], SKYVIEW_FIRST, sources, [], 30.0)
    with pytest.raises(KeyError, match=r"frdeep_v2.csv: no column official_split"):
        held_out_positions(sources, [{"path": str(FRDEEP), "select": {"official_split": ["test"]}}])


def test_a_cutout_that_does_not_match_its_index_is_refused(tmp_path):
    pool, _ = build_pool([QUICKSTART_MIRROR], SKYVIEW_FIRST, _quickstart_sources(), [], 30.0)
    pool.loc[0, "sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"pretrain pool: .*sha256 of the \(uncompressed\) file is .*the index says"):
        pool_images(pool.head(2), {"sigma": 3.0})


def test_nt_xent_is_the_cross_entropy_of_each_view_against_its_partner():
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # view 0's similarities to views 1, 2 (its partner), 3: 0, 1, 0 (over temperature 0.5: 0, 2, 0)
    expected = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert nt_xent(first, second, 0.5).item() == pytest.approx(expected, rel=1e-6)
    swapped = nt_xent(first, second.flip(0), 0.5).item()  # each partner now the orthogonal view
    assert swapped > expected


def test_the_same_seed_pre_trains_the_same_network_and_leaves_the_classifier_as_initialised():
    images = np.random.default_rng(0).random((12, 1, 90, 90), dtype=np.float32)
    settings = PretrainSettings(epochs=2, batch_size=6, precision="fp32")
    first, history = simclr("tang2019", {}, 2, images, 3, settings)
    again, _ = simclr("tang2019", {}, 2, images, 3, settings)
    for name, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[name]), name
    assert [row["epoch"] for row in history] == [1, 2] and all(np.isfinite(row["loss"]) for row in history)
    torch.manual_seed(3)
    from rgmorph import models
    fresh = models.build("tang2019", num_classes=2, image_size=90)
    assert torch.equal(first.classifier[1].weight, fresh.classifier[1].weight)  # untouched by pre-training
    assert not torch.equal(first.features[0].weight, fresh.features[0].weight)  # the trunk learnt
    with pytest.raises(ValueError, match="dn_equivariant has no features trunk"):
        simclr("dn_equivariant", {}, 2, images, 3, settings)


def test_a_study_fine_tunes_each_seed_from_its_pre_trained_trunk_and_records_the_pool(tmp_path):
    results = tmp_path / "study"
    overlay = tmp_path / "pretrain.yaml"
    overlay.write_text(yaml.safe_dump({
        "results_dir": str(results), "surveys": {"NVSS": None}, "transfer": {"models": []},
        "train": {"models": ["tang2019"], "seeds": [0, 1], "epochs": 1},
        "pretrain": {"method": "simclr", "epochs": 1, "batch_size": 16,
                     "exclude": [{"path": str(FRDEEP), "select": {"split": ["test"]}}]}}))
    env = {**os.environ, "RGMORPH_SKYVIEW_MIRROR": str(QUICKSTART_MIRROR)}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile",
                             str(REPO / "config" / "quickstart.yaml"), str(overlay), "--",
                             str(results / "models" / "FIRST" / "tang2019" / "seed1" / "checkpoint.pt")],
                            cwd=REPO, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    pool = pd.read_csv(results / "pretrain" / "FIRST" / "tang2019" / "pool.csv")
    sources = pd.read_csv(results / "catalogue" / "sources.csv")
    test = sources[sources["split"] == "test"].rename(columns={"ra_deg": "ra", "dec_deg": "dec"})
    assert len(test) and not near(pool, test, 30.0).any()
    for seed in (0, 1):
        pretrained_path = results / "pretrain" / "FIRST" / "tang2019" / f"seed{seed}" / "pretrained.pt"
        pretrained = torch.load(pretrained_path, weights_only=False)
        checkpoint = torch.load(results / "models" / "FIRST" / "tang2019" / f"seed{seed}" / "checkpoint.pt",
                                weights_only=False)
        record = checkpoint["self_supervised"]
        assert record["checkpoint"] == str(pretrained_path) and record["pool"]["count"] == len(pool)
        assert record["reinitialised"] == ["classifier"] and checkpoint["kind"] == "scratch"
        assert [row["name"] for row in pretrained["pretraining"]["pool"]["sources"]] == list(pool["name"])
        assert pretrained["pretraining"]["pool"]["sources"][0]["sha256"] == pool["sha256"][0]
