"""The paper's tables: numbers from summary.csv, LaTeX that compiles in principle, an honest empty state."""

import math

import pandas as pd
import pytest

import tiny_results
from rgmorph import tables


def _summary(**overrides) -> pd.DataFrame:
    row = {"model": "tang2019", "mode": "scratch", "pretrained_on": "", "trained_on": "FIRST", "survey": "FIRST",
           "seeds": 3, "n_test": 198}
    for metric in tables.MAIN_METRICS + tables.TRANSFER_METRICS:
        row.update({f"{metric}_mean": 0.8, f"{metric}_std": 0.01, f"{metric}_ci_low": 0.75, f"{metric}_ci_high": 0.85})
    row.update(overrides)
    return pd.DataFrame([row])


def _write_all(tmp_path, summary: pd.DataFrame):
    path = tmp_path / "summary.csv"
    summary.to_csv(path, index=False)
    outputs = {name: tuple(tmp_path / f"{name}_table.{ext}" for ext in ("csv", "tex", "html"))
               for name in ("main", "transfer", "published")}
    return tables.write_all(path, outputs, " (catalogue frdeep_v2.csv; FIRST, NVSS)"), outputs


def test_format_helpers():
    assert tables.format_cell(0.8851, 0.0123) == "0.885 ± 0.012"
    assert tables.format_cell(float("nan")) == "--"
    assert tables.format_interval(0.81, 0.9) == "[0.81, 0.90]"
    assert tables.latex_escape("frdeep_v2 & 50%") == r"frdeep\_v2 \& 50\%"


def test_main_table_from_the_tiny_run(tmp_path):
    tree = tiny_results.shared()
    summary = pd.read_csv(tree["summary"], keep_default_na=False, na_values=[""])
    written, outputs = _write_all(tmp_path, summary)
    main = written["main"]
    assert list(main["survey"]) == ["FIRST", "NVSS"] and list(main["seeds"]) == [2, 2]
    for metric in tables.MAIN_METRICS:
        assert list(main[f"{metric}_mean"]) == pytest.approx(list(summary[f"{metric}_mean"]))
    latex = outputs["main"][1].read_text()
    assert latex.count(r"\begin{tabular}") == 1 and r"\toprule" in latex and r"\bottomrule" in latex
    assert "frdeep\\_v2" in latex  # escaped in the caption
    assert latex.count("{") == latex.count("}")
    assert "TPR0 (FRII)" in latex and "TPR10 (FRI)" in latex and "ECE" in latex
    html = outputs["main"][2].read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<tr") == 1 + 2


def test_transfer_table_empty_state_says_so(tmp_path):
    written, outputs = _write_all(tmp_path, _summary())
    transfer = written["transfer"]
    assert list(transfer["setting"]) == ["from scratch"]
    assert transfer["note"].iloc[0] == tables.NO_TRANSFER_NOTE
    assert "No transfer-learning" in outputs["transfer"][1].read_text()
    assert "No transfer-learning" in outputs["transfer"][2].read_text()


def test_transfer_table_with_transfer_and_cross_survey_rows(tmp_path):
    summary = pd.concat([
        _summary(),
        _summary(mode="transfer", pretrained_on="NVSS", accuracy_mean=0.9),
        _summary(mode="cross-survey", trained_on="NVSS", accuracy_mean=0.6),
        _summary(model="lenet"),  # no transfer variant: left out of table 2
    ])
    written, outputs = _write_all(tmp_path, summary)
    transfer = written["transfer"]
    assert list(transfer["setting"]) == ["from scratch", "transfer from NVSS", "trained on NVSS, not fine-tuned"]
    assert list(transfer["accuracy_mean"]) == [0.8, 0.9, 0.6] and set(transfer["note"]) == {""}
    assert "No transfer-learning" not in outputs["transfer"][1].read_text()


def test_published_table_cites_and_compares_with_the_best_first_variant(tmp_path):
    summary = pd.concat([_summary(), _summary(model="lenet", accuracy_mean=0.86, auroc_mean=0.9),
                         _summary(survey="NVSS", trained_on="NVSS", accuracy_mean=0.99)])
    written, outputs = _write_all(tmp_path, summary)
    published = written["published"]
    assert list(published["published"]) == [0.885, 0.894, 0.77]
    assert list(published["ours_model"]) == ["lenet"] * 3  # best FIRST accuracy; the NVSS row is not comparable
    assert list(published["ours_mean"]) == [0.86, 0.9, 0.86]
    latex = outputs["published"][1].read_text()
    assert r"\citep{Bowles2021}" in latex and "10.1093/mnras/staa3946" in latex and "0.885" in latex


def test_published_table_without_first_runs_leaves_ours_empty(tmp_path):
    written, _ = _write_all(tmp_path, _summary(survey="NVSS", trained_on="NVSS"))
    assert all(math.isnan(value) for value in written["published"]["ours_mean"])
