"""classify.check: flag rate, AUROC and agreement of small hand-made tables against the same numbers by hand;
config errors named by their key; the schema leaves the check out unless it is configured."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake.utils import validate

from conftest import REPO
from rgmorph.classify_check import CHECK_COLUMNS, CheckError, auroc_interval, ood_check, write_ood_check

GROUPS = {"uncertain": {"confidence": ["uncertain"], "fr_class": ["FRI", "FRII"]}, "hybrid": {"fr_class": ["hybrid"]}}


def _row(name, confidence, fr_class, predicted, score, entropy, flag, status="classified"):
    return {"name": name, "ra_deg": "1.0", "dec_deg": "2.0", "fr_class": fr_class, "confidence": confidence,
            "status": status, "reason": "", "predicted_class": predicted, "prob_FRI": "0.5", "prob_FRII": "0.5",
            "prob_FRI_std": "0", "prob_FRII_std": "0", "entropy": entropy, "ood_score": score, "ood_threshold": 2.5,
            "ood_flag": flag, "n_seeds": 2}


@pytest.fixture
def table() -> pd.DataFrame:
    rows = [  # the reference: confident test sources (their catalogue labels: FRI, FRII, FRII, FRI)
        _row("t1", "confident", "FRI", "FRI", 1.0, 0.10, False),
        _row("t2", "confident", "FRII", "FRII", 2.0, 0.20, False),
        _row("t3", "confident", "FRII", "FRI", 3.0, 0.30, True),
        _row("t4", "confident", "FRI", "FRI", 0.5, 0.40, False),
        # uncertain: 3 classified (scores 2.0, 4.0, 0.0; 2 of 3 predictions right), 1 without a cutout
        _row("u1", "uncertain", "FRI", "FRI", 2.0, 0.35, False),
        _row("u2", "uncertain", "FRII", "FRII", 4.0, 0.50, True),
        _row("u3", "uncertain", "FRII", "FRI", 0.0, 0.05, False),
        _row("u4", "uncertain", "FRI", "", "", "", "", status="failed"),
        # hybrids: no class label
        _row("h1", "confident", "hybrid", "FRII", 5.0, 0.60, True),
        _row("h2", "uncertain", "hybrid", "FRI", 6.0, 0.25, True),
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def sources() -> pd.DataFrame:
    return pd.DataFrame({"name": ["t1", "t2", "t3", "t4", "x9", "u1"], "class_name": ["FRI", "FRII", "FRII", "FRI",
                                                                                       "FRI", "FRII"],
                         "split": ["test", "test", "test", "test", "train", "uncertain"]})


def _wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def _check(table, sources, tmp_path, **settings) -> pd.DataFrame:
    table.to_csv(tmp_path / "classifications.csv", index=False)
    sources.to_csv(tmp_path / "sources.csv", index=False)
    settings = {"groups": GROUPS, "label_column": "fr_class", "n_resamples": 200, **settings}
    check = write_ood_check(tmp_path / "classifications.csv", tmp_path / "sources.csv", tmp_path / "ood_check.csv",
                            **settings)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "ood_check.csv"), check, check_dtype=False)
    return check.set_index("group")


def test_flag_rate_auroc_and_agreement_by_hand(table, sources, tmp_path):
    check = _check(table, sources, tmp_path)
    assert list(check.reset_index().columns) == CHECK_COLUMNS
    assert check.index.tolist() == ["reference", "uncertain", "hybrid"]
    reference, uncertain, hybrid = check.loc["reference"], check.loc["uncertain"], check.loc["hybrid"]
    assert (reference["n"], uncertain["n"], hybrid["n"]) == (4, 3, 2)  # u4 has no scores
    assert reference["ood_flag_rate"] == 0.25 and hybrid["ood_flag_rate"] == 1.0
    assert uncertain["ood_flag_rate"] == pytest.approx(1 / 3)
    # reference scores 1, 2, 3, 0.5: of the 12 (uncertain, reference) pairs 2.0 beats 2 and ties 1, 4.0 beats 4
    assert uncertain["auroc_ood_score"] == pytest.approx((2 + 0.5 + 4 + 0) / 12)
    assert hybrid["auroc_ood_score"] == 1.0
    # entropies: reference 0.1, 0.2, 0.3, 0.4; uncertain 0.35 beats 3, 0.5 beats 4, 0.05 none; hybrid 0.6 4, 0.25 2
    assert uncertain["auroc_entropy"] == pytest.approx(7 / 12)
    assert hybrid["auroc_entropy"] == pytest.approx(6 / 8)
    assert math.isnan(reference["auroc_ood_score"]) and math.isnan(reference["auroc_entropy_low"])
    # agreement with the catalogue's labels (reference) and the carried fr_class (groups)
    assert (reference["n_labelled"], reference["agreement"]) == (4, 0.75)
    assert (uncertain["n_labelled"], uncertain["agreement"]) == (3, pytest.approx(2 / 3))
    assert (reference["agreement_low"], reference["agreement_high"]) == pytest.approx(_wilson(3, 4))
    assert (uncertain["agreement_low"], uncertain["agreement_high"]) == pytest.approx(_wilson(2, 3))
    assert hybrid["n_labelled"] == 0 and math.isnan(hybrid["agreement"]) and math.isnan(hybrid["agreement_low"])


def test_auroc_interval_is_seeded_and_holds_the_estimate(table, sources, tmp_path):
    check = _check(table, sources, tmp_path)
    again = _check(table, sources, tmp_path)
    pd.testing.assert_frame_equal(check, again)
    for group in ("uncertain", "hybrid"):
        for score in ("ood_score", "entropy"):
            low, estimate, high = (check.loc[group, f"auroc_{score}{end}"] for end in ("_low", "", "_high"))
            assert 0 <= low <= estimate <= high <= 1
    assert auroc_interval(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == (1.0, 1.0)  # always separated


def test_a_group_column_the_table_lacks_names_the_column_and_the_key(table, sources):
    with pytest.raises(CheckError, match=r"classify\.check\.groups\.bent .*'morphology'.*classify\.catalogue\.carry"):
        ood_check(table, sources, {"bent": {"morphology": ["head-tail"]}}, "fr_class")


def test_a_label_column_the_table_lacks_names_the_key(table, sources):
    with pytest.raises(CheckError, match=r"classify\.check\.label_column 'label'"):
        ood_check(table, sources, GROUPS, "label")


def test_no_reference_source_in_the_table_is_an_error(table, sources):
    with pytest.raises(CheckError, match="none of the 4 'test' sources"):
        ood_check(table[~table["name"].str.startswith("t")], sources, GROUPS, "fr_class")


def test_the_schema_adds_the_check_only_when_configured():
    schema = REPO / "workflow" / "schemas" / "classify.schema.yaml"
    config = yaml.safe_load((REPO / "config" / "classify.yaml").read_text())
    validate(config, str(schema), set_default=True)
    check = config["classify"]["check"]
    assert check["reference_split"] == "test" and check["bootstrap_resamples"] == 1000 and check["bootstrap_seed"] == 0
    assert list(check["groups"]) == ["uncertain", "hybrid", "confident_train"]
    del config["classify"]["check"]
    validate(config, str(schema), set_default=True)
    assert "check" not in config["classify"]
