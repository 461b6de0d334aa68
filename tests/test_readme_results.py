"""Every result the README quotes equals the committed table it names: the FRDEEP table against
metrics/summary.json (the published run), the MiraBest and FRI/FRII/Bent numbers against their studies'
tables/summary.csv. A re-run study that changes a number fails here until the README says it too."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
VARIANTS = {"Tang et al. CNN": "tang2019", "LeNet": "lenet", "Gabor + SVM": "gabor_svm", "Tang CNN": "tang2019",
            "ResNet": "resnet"}
NUMBER = r"(\d\.\d{3}) ± (\d\.\d{3})"


def _frdeep_rows() -> list[list[str]]:
    section = README[README.index("**FRDEEP**"):README.index("**MiraBest confident**")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| ") and "±" in line]
    assert len(rows) == 8, rows
    return rows


def _summary_key(label: str, surveys: str) -> tuple[str, str]:
    variant = VARIANTS[next(name for name in VARIANTS if label.startswith(name))]
    if "→" in surveys:
        source, target = (part.strip() for part in surveys.split("→"))
        return f"{source}->{target}", f"{variant}-transfer-from-{source}"
    return surveys, variant


@pytest.mark.parametrize("row", _frdeep_rows(), ids=lambda row: f"{row[0]} {row[1]}")
def test_the_frdeep_table_is_the_published_runs_summary(row):
    summary = json.loads((REPO / "metrics" / "summary.json").read_text())
    survey, model = _summary_key(row[0], row[1])
    for cell, metric in zip(row[2:], ("accuracy", "auroc", "tpr10_FRII")):
        mean, std = re.fullmatch(NUMBER, cell).groups()
        assert (float(mean), float(std)) == (round(summary[survey][model][f"{metric}_mean"], 3),
                                             round(summary[survey][model][f"{metric}_std"], 3)), (row, metric)


@pytest.mark.parametrize("study, start, end", [("mirabest", "**MiraBest confident**", "**FRI / FRII / Bent**"),
                                                ("three_class", "**FRI / FRII / Bent**", "Both studies")])
def test_the_other_studies_numbers_are_their_summaries(study, start, end):
    text = README[README.index(start):README.index(end)]
    table = pd.read_csv(REPO / "results" / study / "tables" / "summary.csv")
    table = table[table["kind"] == "scratch"].set_index("model")
    quoted = re.findall(rf"(Tang CNN|ResNet|Gabor \+ SVM) {NUMBER}", text)
    assert quoted
    for label, mean, std in quoted:
        row = table.loc[VARIANTS[label]]
        assert (float(mean), float(std)) == (round(row["accuracy_mean"], 3), round(row["accuracy_std"], 3)), label


def _ablation_rows() -> list[list[str]]:
    section = README[README.index("**What moves the numbers**"):]
    section = section[:section.index("\n## ")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()
            if line.startswith("| `")]
    assert rows
    return rows


@pytest.mark.parametrize("row", _ablation_rows(), ids=lambda row: f"{row[0]} {row[1]}")
def test_the_ablation_rows_are_the_committed_ablation_tables(row):
    study, choice = (re.match(r"`([a-z0-9_]+)`", cell).group(1) for cell in row[:2])
    table = pd.read_csv(REPO / "results" / study / "ablation" / "tables" / "ablation.csv").set_index("ablation")
    entry = table.loc[choice]
    assert row[2] == ("yes" if entry["picked_on_validation"] else "no")
    for cell, prefix in zip(row[3:5], ("val_accuracy", "test_accuracy")):
        mean, std = re.fullmatch(NUMBER, cell).groups()
        assert (mean, std) == (f"{entry[f'{prefix}_mean']:.3f}", f"{entry[f'{prefix}_std']:.3f}")
    accuracy, low, high = re.fullmatch(r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]", row[5]).groups()
    assert [accuracy, low, high] == [f"{entry[f'test_ensemble_accuracy{suffix}']:.3f}"
                                     for suffix in ("", "_ci_low", "_ci_high")]
    recalls = re.findall(r"(\w+) (\d\.\d{3})", row[6])
    assert recalls
    for name, recall in recalls:
        assert recall == f"{entry[f'test_recall_{name}_mean']:.3f}", name
