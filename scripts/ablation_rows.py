"""The README's "What moves the numbers" rows, from the committed ablation tables (tests/test_readme_results.py
checks them against the same tables).

    .venv/bin/python scripts/ablation_rows.py mirabest_official mirabest three_class
"""

import sys
from pathlib import Path

import pandas as pd

TEST_SETS = {"mirabest_official": "release test set", "mirabest": "our split"}


def rows(study: str) -> list[str]:
    table = pd.read_csv(Path("results") / study / "ablation" / "tables" / "ablation.csv")
    lines = []
    for entry in table.to_dict("records"):
        test_set = ", ".join(part for part in (TEST_SETS.get(study), str(entry["n_test"])) if part)
        recalls = ", ".join(f"{column[len('test_recall_'):-len('_mean')]} {entry[column]:.3f}"
                            for column in table.columns if column.startswith("test_recall_") and column.endswith("_mean"))
        ensemble = " ".join([f"{entry['test_ensemble_accuracy']:.3f}",
                             f"[{entry['test_ensemble_accuracy_ci_low']:.3f}, {entry['test_ensemble_accuracy_ci_high']:.3f}]"])
        cells = [f"`{study}` ({test_set})", f"`{entry['ablation']}`", "yes" if entry["picked_on_validation"] else "no",
                 f"{entry['val_accuracy_mean']:.3f} ± {entry['val_accuracy_std']:.3f}",
                 f"{entry['test_accuracy_mean']:.3f} ± {entry['test_accuracy_std']:.3f}", ensemble, recalls]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    print("\n".join(line for study in sys.argv[1:] for line in rows(study)))
