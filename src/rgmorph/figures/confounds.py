"""Figure: test accuracy by parent catalogue and by redshift bin, per variant (mean +/- std over seeds).

Each x tick names the group, the number of test sources in it and its class mix, so a reader sees
at once that a catalogue (or a redshift bin) is nearly one class.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rgmorph.confounds import ALL
from rgmorph.evaluate import GROUP_COLUMNS, group_columns
from rgmorph.figures.style import DOUBLE_COLUMN_IN, OKABE_ITO, empty_state, save_figure, wrap_label
from rgmorph.layout import Variant

PANELS = [("parent_catalogue", "parent catalogue"), ("redshift", "redshift bin, z (dimensionless)")]
MARKERS = ["o", "s", "^", "D", "v", "P"]
MAX_VARIANTS = len(MARKERS)


def variant_label(row) -> str:
    return Variant.from_row(row).label


def _tick_label(group: str, row: pd.Series, class_columns: list[str]) -> str:
    shown = group.replace(", inf)", ", \u221e)")
    mix = "\n".join(wrap_label(f"{column[2:]} {int(row[column])}", 16) for column in class_columns)
    return f"{shown}\nn = {int(row['n_sources'])}\n{mix}"


def plot_confounds(table: str | Path | pd.DataFrame, stem: str | Path) -> None:
    """Write ``stem``.png and ``stem``.pdf from an accuracy_by_group table (a frame or its CSV)."""
    table = pd.read_csv(table, dtype={c: str for c in [*GROUP_COLUMNS, "mode"]}, keep_default_na=False) \
        if not isinstance(table, pd.DataFrame) else table.copy()
    keys = group_columns(table)
    table[keys] = table[keys].fillna("").astype(str)
    overall = table[table["class_name"] == ALL] if "class_name" in table.columns else table.iloc[:0]
    variants = overall[keys].drop_duplicates().reset_index(drop=True)
    shown = variants.head(MAX_VARIANTS)
    class_columns = [c for c in table.columns if c.startswith("n_") and c != "n_sources"]

    # a tick label has a line for the group, its size and each class: taller past the two-class four lines,
    # so that the axes keep their height
    lines = 2 + sum(wrap_label(f"{column[2:]} 000", 16).count("\n") + 1 for column in class_columns)
    figure, axes = plt.subplots(1, 2, figsize=(DOUBLE_COLUMN_IN, 3.0 + 0.11 * max(lines - 4, 0)),
                                constrained_layout=True, gridspec_kw={"width_ratios": [2, 3]})
    width = 0.6 / max(len(shown), 1)
    for axis, (grouping, xlabel) in zip(axes, PANELS):
        rows = overall[overall["grouping"] == grouping]
        if rows.empty:
            empty_state(axis, f"no {xlabel.split(',')[0]} groups")
            continue
        groups = list(dict.fromkeys(rows["group"]))  # the table's order
        counts = rows.drop_duplicates("group").set_index("group")
        for v, variant in shown.iterrows():
            mine = rows.merge(variant.to_frame().T, on=keys).set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (v - (len(shown) - 1) / 2) * width
            axis.errorbar(x, mine["accuracy_mean"], yerr=mine["accuracy_std"], fmt=MARKERS[v], markersize=4.5,
                          color=OKABE_ITO[v % len(OKABE_ITO)], capsize=2, linewidth=1,
                          label=variant_label(variant) if axis is axes[0] else None)
        axis.set_xticks(range(len(groups)), [_tick_label(g, counts.loc[g], class_columns) for g in groups], fontsize=7)
        axis.set_xlim(-0.5, len(groups) - 0.5)
        axis.set_ylim(0.0, 1.05)
        axis.set_xlabel(xlabel)
        axis.set_ylabel("test accuracy (fraction)")
        axis.grid(alpha=0.3, axis="y")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 3), frameon=False)
    seeds = overall["seeds"]
    seed_text = "/".join(str(int(n)) for n in sorted(set(seeds))) if len(seeds) else "0"
    more = f"; first {len(shown)} of {len(variants)} variants" if len(variants) > len(shown) else ""
    figure.suptitle(f"Test accuracy by parent catalogue and redshift (mean $\\pm$ std over {seed_text} seeds{more})")
    save_figure(figure, stem)
