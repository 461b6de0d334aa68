"""The paper's tables: numbers from summary.csv, LaTeX that compiles in principle, an honest empty state."""

import math

import pandas as pd
import pytest

from rgmorph import tables


def _summary(**overrides) -> pd.DataFrame:
    row = {"model": "tang2019", "kind": "scratch", "pretrained_on": "", "trained_on": "FIRST", "survey": "FIRST",
           "seeds": 3, "n_test": 198, "val_accuracy_mean": 0.8}
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
    assert tables.format_cell(0.8851, 0.0123, latex=True) == r"$0.885 \pm 0.012$"
    assert tables.format_cell(float("nan")) == "--"
    assert tables.format_interval(0.81, 0.9) == "[0.81, 0.90]"
    assert tables.latex_escape("frdeep_v2 & 50%") == r"frdeep\_v2 \& 50\%"


def test_main_table_from_the_tiny_run(tmp_path):
    import tiny_results  # trains tiny models: only this test needs it

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
    assert html.startswith("<!DOCTYPE html>") and html.count("<tr") == 1 + 2 and "<caption>Test-split" in html


def test_transfer_table_empty_state_says_so(tmp_path):
    written, outputs = _write_all(tmp_path, _summary())
    transfer = written["transfer"]
    assert list(transfer["setting"]) == ["from scratch"]
    assert transfer["note"].iloc[0] == tables.NO_TRANSFER_NOTE
    assert "No transfer-learning" in outputs["transfer"][1].read_text()
    assert "No transfer-learning" in outputs["transfer"][2].read_text()


def test_transfer_table_puts_each_transfer_run_beside_its_baseline(tmp_path):
    summary = pd.concat([
        _summary(),
        _summary(kind="transfer", pretrained_on="NVSS", accuracy_mean=0.9),
        _summary(model="lenet"),  # no transfer variant: left out of table 2
    ])
    written, outputs = _write_all(tmp_path, summary)
    transfer = written["transfer"]
    assert list(transfer["setting"]) == ["from scratch", "transfer from NVSS"]
    assert list(transfer["accuracy_mean"]) == [0.8, 0.9] and set(transfer["note"]) == {""}
    assert "No transfer-learning" not in outputs["transfer"][1].read_text()


def test_published_table_compares_with_the_first_variant_best_on_validation(tmp_path):
    summary = pd.concat([_summary(), _summary(model="lenet", accuracy_mean=0.86, auroc_mean=0.9, val_accuracy_mean=0.85),
                         # best on test, worse on validation: never the comparison row
                         _summary(model="vgg", accuracy_mean=0.95, auroc_mean=0.97, val_accuracy_mean=0.7),
                         _summary(survey="NVSS", trained_on="NVSS", accuracy_mean=0.99, val_accuracy_mean=0.99)])
    written, outputs = _write_all(tmp_path, summary)
    published = written["published"]
    assert list(published["published"]) == [0.885, 0.894, 0.77]
    assert list(published["ours_model"]) == ["lenet"] * 3  # best FIRST validation; the NVSS row is not comparable
    assert list(published["ours_mean"]) == [0.86, 0.9, 0.86]
    latex = outputs["published"][1].read_text()
    assert r"\citep{Bowles2021}" in latex and "10.1093/mnras/staa3946" in latex and "0.885" in latex


def test_published_table_without_first_runs_leaves_ours_empty(tmp_path):
    written, _ = _write_all(tmp_path, _summary(survey="NVSS", trained_on="NVSS"))
    assert all(math.isnan(value) for value in written["published"]["ours_mean"])


def test_published_results_are_data_with_citations():
    published = pd.read_csv(tables.PUBLISHED_RESULTS)
    assert {"reference", "citation", "bibkey", "survey", "metric", "value"} <= set(published.columns)
    assert published["citation"].str.len().min() > 20 and published["value"].between(0, 1).all()
    assert all(tables.metric_label(metric) != metric for metric in published["metric"])  # every metric has a label


def test_published_rows_are_those_of_the_same_classes():
    binary = tables.published_table(_summary())
    assert "Aniyan & Thorat (2017)" not in set(binary["reference"]) and len(binary) == 3
    three = tables.published_table(_three_class_summary())
    assert set(three["reference"]) == {"Aniyan & Thorat (2017)"}
    assert dict(zip(three["metric"], three["published"]))["recall_Bent"] == 0.79
    assert list(three["ours_mean"]) == [0.7] * 6  # ours beside each: precision and recall per class


def test_notes_and_caption_reach_latex_and_html(tmp_path):
    _, outputs = _write_all(tmp_path, _summary())
    latex, html = outputs["published"][1].read_text(), outputs["published"][2].read_text()
    assert r"\caption{Published results" in latex and r"\label{tab:published}" in latex and r"95\%" in latex
    assert "References: Bowles M." in latex and "Tang, Scaife \\& Leahy" in latex
    assert "<caption>Published results" in html and "<p>References: Bowles M." in html and "Scaife &amp; Leahy" in html
    assert "$0.800 \\pm 0.010$ {\\scriptsize [0.75, 0.85]}" in latex


def test_binary_metric_lists_are_unchanged():
    assert tables.main_metrics(("FRI", "FRII")) == tables.MAIN_METRICS == [
        "accuracy", "auroc", "f1_FRI", "f1_FRII", "tpr0_FRII", "tpr10_FRII", "tpr0_FRI", "tpr10_FRI", "ece"]
    assert tables.transfer_metrics(("FRI", "FRII")) == tables.TRANSFER_METRICS
    assert [tables.metric_label(m) for m in tables.MAIN_METRICS] == [
        tables.METRIC_LABELS[m] for m in tables.MAIN_METRICS]


def _three_class_summary(kind="scratch") -> pd.DataFrame:
    from rgmorph.metrics import metric_names

    row = {"model": "tang2019", "kind": kind, "pretrained_on": "" if kind == "scratch" else "NVSS",
           "trained_on": "FIRST", "survey": "FIRST", "seeds": 3, "n_test": 90, "val_accuracy_mean": 0.7}
    for metric in metric_names(("FRI", "FRII", "Bent")):
        row.update({f"{metric}_mean": 0.7, f"{metric}_std": 0.02, f"{metric}_ci_low": 0.65, f"{metric}_ci_high": 0.75})
    return pd.DataFrame([row])


def test_three_class_tables_have_a_column_per_class(tmp_path):
    summary = pd.concat([_three_class_summary(), _three_class_summary("transfer")], ignore_index=True)
    written, outputs = _write_all(tmp_path, summary)
    main = written["main"]
    for metric in ("macro_f1", "f1_Bent", "tpr0_Bent", "tpr10_Bent", "tpr0_FRI", "f1_FRII"):
        assert f"{metric}_mean" in main.columns and f"{metric}_ci_low" in main.columns
    assert main.iloc[0]["f1_Bent_mean"] == 0.7
    html_text = outputs["main"][2].read_text()
    assert "TPR0 (Bent)" in html_text and "Macro F1" in html_text and "F1 Bent" in html_text
    assert "FRII (or FRI)" not in html_text and "one-vs-rest" in html_text
    assert "TPR10 (Bent)" in outputs["main"][1].read_text()
    transfer = written["transfer"]
    assert {"recall_Bent_mean", "precision_Bent_mean", "f1_Bent_mean", "macro_f1_mean"} <= set(transfer.columns)
    assert "Recall Bent" in outputs["transfer"][2].read_text()


def test_classes_nothing_was_published_on_give_an_empty_table_with_a_note(tmp_path):
    summary = _three_class_summary()
    summary.columns = [column.replace("Bent", "Compact") for column in summary.columns]
    paths = [tmp_path / f"published.{ext}" for ext in ("csv", "tex", "html")]
    table = tables.write_published_table(summary, *paths)
    assert table.empty and list(table.columns) == tables.PUBLISHED_COLUMNS
    assert paths[0].read_text().strip() == ",".join(tables.PUBLISHED_COLUMNS)
    assert "No published result on these classes in resources/published\\_results.csv" in paths[1].read_text()
