"""The paper's tables, from the summary CSV: each as CSV (numbers), LaTeX and HTML (pandas Styler).

1. ``main``: every variant on every survey, trained from scratch: accuracy, AUROC, F1 per
   class, TPR0/TPR10 with FRII and with FRI as the positive class, ECE; mean +/- std over
   seeds and the 95% bootstrap interval over test sources.
2. ``transfer``: transfer learning against training from scratch, Tang et al. (2019) style:
   recall, precision and F1 per class, accuracy and AUC, per test survey.
3. ``published``: published FRDEEP numbers (resources/published_results.csv) beside ours, with citations.

LaTeX tables use booktabs and (for the wide tables) graphicx's \\resizebox.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from pandas.io.formats.style import Styler

from rgmorph.files import write_bytes_atomic, write_csv_atomic
from rgmorph.layout import Variant
from rgmorph.metrics import CLASS_NAMES, class_names_from_columns

PUBLISHED_RESULTS = Path(__file__).resolve().parents[2] / "resources" / "published_results.csv"
METRIC_LABELS = {
    "accuracy": "Accuracy", "auroc": "AUROC", "ece": "ECE",
    "tpr0_FRII": "TPR0 (FRII)", "tpr10_FRII": "TPR10 (FRII)", "tpr0_FRI": "TPR0 (FRI)", "tpr10_FRI": "TPR10 (FRI)",
    "f1_FRI": "F1 FRI", "f1_FRII": "F1 FRII", "precision_FRI": "Precision FRI", "precision_FRII": "Precision FRII",
    "recall_FRI": "Recall FRI", "recall_FRII": "Recall FRII",
}
MAIN_METRICS = ["accuracy", "auroc", "f1_FRI", "f1_FRII", "tpr0_FRII", "tpr10_FRII", "tpr0_FRI", "tpr10_FRI", "ece"]
TRANSFER_METRICS = ["recall_FRI", "recall_FRII", "precision_FRI", "precision_FRII", "f1_FRI", "f1_FRII",
                    "accuracy", "auroc"]
_LABEL_PATTERNS = {"precision": "Precision {}", "recall": "Recall {}", "f1": "F1 {}", "auroc": "AUROC ({})",
                   "tpr0": "TPR0 ({})", "tpr10": "TPR10 ({})"}
NO_TRANSFER_NOTE = ("No transfer-learning runs are configured: only the from-scratch baselines "
                    "are shown. Configure transfer runs in the training stage to fill this table.")
_LATEX_SPECIAL = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"})
_HTML_STYLES = [
    {"selector": "", "props": "border-collapse: collapse; font-family: 'DejaVu Sans', Arial, sans-serif; "
                              "font-size: 11px; border-bottom: 2px solid #444"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; max-width: 60em; margin-bottom: 0.6em"},
    {"selector": "th, td", "props": "padding: 3px 6px; text-align: right; vertical-align: bottom"},
    {"selector": "th", "props": "border-top: 2px solid #444; border-bottom: 1px solid #444"},
    {"selector": "th:first-child, td:first-child", "props": "text-align: left"},
    {"selector": ".ci", "props": "color: #555; font-size: 10px"},
]


# ------------------------------------------------------------ formatting


def latex_escape(text) -> str:
    return str(text).translate(_LATEX_SPECIAL)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def format_cell(mean, std=None, digits: int = 3, latex: bool = False) -> str:
    """'0.885 ± 0.012' (LaTeX: '$0.885 \\pm 0.012$'), '--' without a number."""
    if not _is_number(mean):
        return "--"
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if _is_number(std) else "")
    return "$" + text.replace("±", r"\pm") + "$" if latex else text


def format_interval(low, high, digits: int = 2) -> str:
    if not (_is_number(low) and _is_number(high)):
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def render(cells: pd.DataFrame, caption: str, notes: Sequence[str] = (), label: str = "", latex: bool = False,
           text_columns: int = 2, wide: bool = False) -> str:
    """One table as a LaTeX float (booktabs) or a self-contained HTML page; ``cells`` already hold markup.

    ``caption`` and ``notes`` are plain text (escaped here; '±' becomes $\\pm$ in LaTeX).
    """
    styler = Styler(cells, uuid=label.replace(":", "_"), cell_ids=False).hide(axis="index")
    if not latex:
        page = styler.set_caption(html.escape(caption)).set_table_styles(_HTML_STYLES).to_html(doctype_html=True)
        return page.replace("</body>", "".join(f"<p>{html.escape(note)}</p>\n" for note in notes) + "</body>")
    environment = "table*" if wide else "table"
    text = styler.to_latex(caption=latex_escape(caption).replace("±", r"$\pm$"), label=label, hrules=True,
                           position_float="centering", environment=environment,
                           column_format="l" * text_columns + "c" * (cells.shape[1] - text_columns))
    if wide:
        text = text.replace("\\begin{tabular}", "\\resizebox{\\textwidth}{!}{%\n\\begin{tabular}")
        text = text.replace("\\end{tabular}", "\\end{tabular}}")
    notes_tex = "".join(f"\\par\\smallskip{{\\footnotesize {latex_escape(note)}}}\n" for note in notes)
    return ("% Generated by rgmorph (workflow rule 'tables'); needs \\usepackage{booktabs}"
            + (" and \\usepackage{graphicx}" if wide else "") + ". Do not edit: rerun snakemake.\n"
            + text.replace(f"\\end{{{environment}}}", notes_tex + f"\\end{{{environment}}}"))


def write_table(frame: pd.DataFrame, cells, caption: str, paths, notes: Sequence[str] = (), label: str = "",
                **options) -> None:
    """CSV of ``frame`` and the LaTeX and HTML tables of ``cells(latex)``."""
    csv_path, tex_path, html_path = paths
    write_csv_atomic(csv_path, frame, float_format="%.4f")
    write_bytes_atomic(tex_path, render(cells(True), caption, notes, label, True, **options).encode())
    write_bytes_atomic(html_path, render(cells(False), caption, notes, label, False, **options).encode())


def _survey_order(values) -> list[str]:
    preferred = ["FIRST", "NVSS"]
    values = list(dict.fromkeys(values))
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _seed_text(summary: pd.DataFrame) -> str:
    seeds = sorted(set(summary["seeds"].astype(int))) if len(summary) else []
    return "/".join(str(s) for s in seeds) or "0"


def _scratch(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["kind"] == "scratch"]


def summary_class_names(summary: pd.DataFrame) -> list[str]:
    """The study's classes, from the summary's ``f1_<name>_mean`` columns (FRI, FRII without any)."""
    return class_names_from_columns(summary.columns, "_mean") or list(CLASS_NAMES)


def main_metrics(class_names: Sequence[str] = CLASS_NAMES) -> list[str]:
    """Table 1's metrics: MAIN_METRICS for two classes (class 1 first in the TPRs); for more, macro-F1,
    F1 per class, TPR0/TPR10 per class in class order."""
    if len(class_names) == 2:
        first, second = class_names
        return ["accuracy", "auroc", f"f1_{first}", f"f1_{second}", f"tpr0_{second}", f"tpr10_{second}",
                f"tpr0_{first}", f"tpr10_{first}", "ece"]
    return (["accuracy", "auroc", "macro_f1"] + [f"f1_{name}" for name in class_names]
            + [f"{m}_{name}" for name in class_names for m in ("tpr0", "tpr10")] + ["ece"])


def transfer_metrics(class_names: Sequence[str] = CLASS_NAMES) -> list[str]:
    """Table 2's metrics: recall, precision and F1 per class, accuracy, AUROC (and macro-F1 for K >= 3)."""
    per_class = [f"{m}_{name}" for m in ("recall", "precision", "f1") for name in class_names]
    return per_class + ["accuracy", "auroc"] + ([] if len(class_names) == 2 else ["macro_f1"])


def metric_label(metric: str) -> str:
    """'F1 FRI', 'TPR0 (Bent)', 'AUROC (FRII)' ... for a column name."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    if metric == "macro_f1":
        return "Macro F1"
    kind, _, name = metric.partition("_")
    return _LABEL_PATTERNS[kind].format(name) if kind in _LABEL_PATTERNS and name else metric


# ------------------------------------------------------------- table 1


def main_table(summary: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows: variant x survey, from-scratch runs; columns: mean, std and interval of each metric."""
    metrics = main_metrics(summary_class_names(summary)) if metrics is None else metrics
    scratch = _scratch(summary)
    columns = ["model", "survey", "seeds", "n_test"]
    columns += [f"{m}_{p}" for m in metrics for p in ("mean", "std", "ci_low", "ci_high")]
    rows = []
    for survey in _survey_order(scratch["survey"]):
        for _, item in scratch[scratch["survey"] == survey].sort_values("model").iterrows():
            row = {"model": item["model"], "survey": survey, "seeds": int(item["seeds"]), "n_test": int(item["n_test"])}
            rows.append(row | {column: item.get(column, math.nan) for column in columns[4:]})
    return pd.DataFrame(rows, columns=columns)


def _main_caption(summary: pd.DataFrame, n_test: str, data_description: str, class_names: Sequence[str]) -> str:
    if len(class_names) == 2:
        positive = f"with {class_names[1]} (or {class_names[0]}) as the positive class."
    else:
        positive = ("with each class in turn as the positive class against the rest; AUROC: mean of the "
                    "one-vs-rest AUROCs; macro F1: mean of the per-class F1.")
    return (f"Test-split results of every model trained from scratch on each survey{data_description}: "
            f"mean ± sample standard deviation over {_seed_text(summary)} seeds, and below it the 95% "
            f"percentile-bootstrap interval of the seed mean over the {n_test} test sources. "
            f"{tpr_note(summary, class_names)} {positive} ECE: expected calibration error, 10 bins (resampling "
            "inflates ECE, so its interval can lie above the estimate).")


def tpr_note(summary: pd.DataFrame, class_names: Sequence[str]) -> str:
    """TPR0/TPR10 are set by false-positive counts, so name them as counts, with the negatives they are out of."""
    counts = {name: sorted({int(n) for n in summary[f"n_test_{name}"].dropna()})
              for name in class_names if f"n_test_{name}" in summary}
    if len(counts) == len(class_names):
        negatives = "; ".join(
            f"{name} positive: {'/'.join(str(sum(c)) for c in zip(*[counts[o] for o in class_names if o != name]))}"
            f" negatives" for name in class_names)
        negatives = f" ({negatives})"
    else:
        negatives = ""
    return ("TPR0 and TPR10 (Metcalf et al. 2019): the fraction of the positive class's test sources recovered at "
            "the strictest score threshold that admits 0 (TPR0) or at most 9 (TPR10) false positives, counts of "
            f"negative test sources{negatives}, not a false-positive rate.")


def write_main_table(summary: pd.DataFrame, csv_path, tex_path, html_path, data_description: str = "") -> pd.DataFrame:
    class_names = summary_class_names(summary)
    metrics = main_metrics(class_names)
    table = main_table(summary, metrics)
    n_test = "/".join(str(n) for n in dict.fromkeys(table["n_test"])) or "0"
    caption = _main_caption(summary, n_test, data_description, class_names)

    def cell(row, metric: str, latex: bool) -> str:
        mean = format_cell(row[f"{metric}_mean"], row[f"{metric}_std"], latex=latex)
        interval = format_interval(row[f"{metric}_ci_low"], row[f"{metric}_ci_high"])
        if latex:
            return f"\\shortstack{{{mean} \\\\ {{\\scriptsize {interval}}}}}" if interval else mean
        return f"{mean}<br><span class='ci'>{interval}</span>"

    def cells(latex: bool) -> pd.DataFrame:
        escape = latex_escape if latex else html.escape
        return pd.DataFrame([[escape(row["model"]), escape(row["survey"]), *[cell(row, m, latex) for m in metrics]]
                             for _, row in table.iterrows()],
                            columns=["Model", "Survey"] + [escape(metric_label(m)) for m in metrics])

    notes = [] if len(table) else ["No runs to summarise."]
    write_table(table, cells, caption, (csv_path, tex_path, html_path), notes, "tab:main", wide=True)
    return table


# ------------------------------------------------------------- table 2


def _setting_label(row) -> str:
    return Variant.from_row(row).setting


def transfer_table(summary: pd.DataFrame, metrics: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Per test survey and model: the from-scratch baseline and every transfer variant."""
    metrics = transfer_metrics(summary_class_names(summary)) if metrics is None else metrics
    others = summary[summary["kind"] == "transfer"]
    notes = [] if len(others) else [NO_TRANSFER_NOTE]
    keys = set(zip(others["model"], others["survey"]))
    selected = summary if others.empty else summary[[key in keys for key in zip(summary["model"], summary["survey"])]]
    columns = ["survey", "model", "setting", "kind", "pretrained_on", "trained_on", "seeds"] + \
        [f"{m}_{p}" for m in metrics for p in ("mean", "std")] + ["note"]
    rows = []
    for survey in _survey_order(selected["survey"]):
        part = selected[selected["survey"] == survey]
        part = part.assign(_rank=(part["kind"] == "transfer").astype(int),
                           _setting=[_setting_label(item) for _, item in part.iterrows()])
        for _, item in part.sort_values(["model", "_rank", "pretrained_on", "trained_on", "_setting"]).iterrows():
            row = {"survey": survey, "model": item["model"], "setting": _setting_label(item), "kind": item["kind"],
                   "pretrained_on": item["pretrained_on"], "trained_on": item["trained_on"],
                   "seeds": int(item["seeds"])}
            row |= {column: item.get(column, math.nan) for column in columns[7:-1]}
            rows.append(row | {"note": notes[0] if notes else ""})
    return pd.DataFrame(rows, columns=columns), notes


def write_transfer_table(summary: pd.DataFrame, csv_path, tex_path, html_path) -> pd.DataFrame:
    metrics = transfer_metrics(summary_class_names(summary))
    table, notes = transfer_table(summary, metrics)
    caption = ("Transfer learning against training from scratch (as in Tang, Scaife & Leahy 2019): "
               f"per-class recall, precision and F1, accuracy and AUC on the test split of each survey, "
               f"mean ± standard deviation over {_seed_text(table) if len(table) else '0'} seeds.")

    def cells(latex: bool) -> pd.DataFrame:
        escape = latex_escape if latex else html.escape
        return pd.DataFrame([[escape(row["survey"]), escape(row["model"]), escape(row["setting"]),
                              *[format_cell(row[f"{m}_mean"], row[f"{m}_std"], latex=latex) for m in metrics]]
                             for _, row in table.iterrows()],
                            columns=["Test survey", "Model", "Training"]
                            + [escape(metric_label(m).replace("AUROC", "AUC")) for m in metrics])

    write_table(table, cells, caption, (csv_path, tex_path, html_path), notes, "tab:transfer", text_columns=3,
                wide=True)
    return table


# ------------------------------------------------------------- table 3


PUBLISHED_COLUMNS = ["reference", "data", "model", "metric", "published", "ours_model", "ours_mean", "ours_std",
                     "ours_ci_low", "ours_ci_high", "ours_seeds", "citation", "bibkey"]
NO_PUBLISHED_NOTE = ("No published result on these classes in resources/published_results.csv: "
                     "nothing to set beside this study's numbers.")


def published_table(summary: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each published number beside ours: the from-scratch variant with the best mean validation accuracy on
    that survey (chosen on validation, so the row is not the luckiest on test)."""
    published = pd.read_csv(PUBLISHED_RESULTS) if published is None else published
    if "classes" in published:  # only works on the same classes as this study
        same_task = published["classes"].str.split().map(tuple) == tuple(summary_class_names(summary))
        published = published[same_task]
    scratch = _scratch(summary)
    rows = []
    for _, entry in published.iterrows():
        ours = scratch[scratch["survey"] == entry["survey"]]
        row = {key: entry[key] for key in ("reference", "data", "model", "metric")} | {"published": entry["value"]}
        if ours.empty:
            row |= {"ours_model": "", "ours_mean": math.nan, "ours_std": math.nan, "ours_ci_low": math.nan,
                    "ours_ci_high": math.nan, "ours_seeds": 0}
        else:
            best = ours.sort_values(["val_accuracy_mean", "model"], ascending=[False, True]).iloc[0]
            parts = ("mean", "std", "ci_low", "ci_high")
            row |= {"ours_model": best["model"], **{f"ours_{p}": best.get(f"{entry['metric']}_{p}", math.nan)
                                                    for p in parts},
                    "ours_seeds": int(best["seeds"])}
        rows.append(row | {"citation": entry["citation"], "bibkey": entry["bibkey"]})
    return pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)  # the columns also when nothing was published on these classes



def write_published_table(summary: pd.DataFrame, csv_path, tex_path, html_path, data_description: str = "",
                          published: pd.DataFrame | None = None) -> pd.DataFrame:
    table = published_table(summary, published)
    caption = ("Published results on the same classes beside ours (the from-scratch variant with the best mean "
               f"validation accuracy on FIRST{data_description}, chosen without the test split; mean ± std over seeds and 95% bootstrap interval "
               "over test sources). Splits, sample sizes and training budgets differ between works.")

    def cells(latex: bool) -> pd.DataFrame:
        escape = latex_escape if latex else html.escape
        rows = []
        for _, row in table.iterrows():
            interval = format_interval(row["ours_ci_low"], row["ours_ci_high"])
            ours = format_cell(row["ours_mean"], row["ours_std"], latex=latex)
            reference = escape(row["reference"]) + (f" \\citep{{{row['bibkey']}}}" if latex else "")
            rows.append([reference, escape(row["data"]), escape(row["model"]),
                         escape(metric_label(row["metric"])), format_cell(row["published"], latex=latex),
                         escape(row["ours_model"] or "--"),
                         ours + ((f" {{\\scriptsize {interval}}}" if interval else "") if latex
                                 else f" <span class='ci'>{interval}</span>")])
        return pd.DataFrame(rows, columns=["Reference", "Data", "Model", "Metric", "Published", "Ours (model)", "Ours"])

    notes = (["References: " + "; ".join(dict.fromkeys(table["citation"])) + "."] if len(table)
             else [NO_PUBLISHED_NOTE])
    write_table(table, cells, caption, (csv_path, tex_path, html_path), notes, "tab:published", text_columns=7)
    return table


def write_all(summary_path, outputs: dict, data_description: str = "",
              published_path: str | Path = PUBLISHED_RESULTS) -> dict[str, pd.DataFrame]:
    """``outputs``: {'main': (csv, tex, html), 'transfer': (...), 'published': (...)}."""
    summary = pd.read_csv(summary_path, keep_default_na=False, na_values=[""],
                          dtype={column: str for column in ("kind", "pretrained_on", "model", "survey", "trained_on",
                                                            "mode")})
    summary["pretrained_on"] = summary["pretrained_on"].fillna("")
    return {
        "main": write_main_table(summary, *outputs["main"], data_description=data_description),
        "transfer": write_transfer_table(summary, *outputs["transfer"]),
        "published": write_published_table(summary, *outputs["published"], data_description=data_description,
                                           published=pd.read_csv(published_path)),
    }


def data_description(config: dict) -> str:
    """' (catalogue X; surveys A, B)' for captions."""
    from rgmorph.catalogue import catalogue_paths

    catalogue = ", ".join(str(path) for path in catalogue_paths(config["catalogue"]))
    surveys = ", ".join(config.get("surveys", {}))
    return f" (catalogue {catalogue}; {surveys})" if catalogue else ""
