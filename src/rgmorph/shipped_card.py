"""A shipped model's card (rgmorph.shipped): built from its study's checkpoints, dataset and test table,
written as card.json (for the code) and MODEL_CARD.md (for a reader)."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pandas as pd

from rgmorph import classify, layout
from rgmorph.catalogue import catalogue_paths
from rgmorph.dataset import load_dataset
from rgmorph.files import sha256_file, write_bytes_atomic

REPO = Path(__file__).resolve().parents[2]
# the test numbers a card quotes (per class where the table has them: recall_FRI, tpr10_FRII, ...)
CARD_METRICS = ("accuracy", "auroc", "macro", "ece", "recall", "tpr0", "tpr10")


def scored_test_metrics(paths: list[str], dataset_path: Path, survey: str, model: str, seeds: list[int]) -> dict:
    """The card's test numbers, scored afresh on the files shipped, as the study's evaluate and summarise
    rules score them: so the card describes these files even when the study's tables come from another run
    (another CPU's arithmetic, say)."""
    from rgmorph.evaluate import evaluate_checkpoint, summarise_runs

    with tempfile.TemporaryDirectory() as folder:
        metrics = []
        for seed, path in zip(seeds, paths):
            run = layout.Run(survey, model, seed)
            metrics.append(run.file(folder, "metrics.json"))
            evaluate_checkpoint(path, dataset_path, metrics[-1], run.file(folder, "predictions.csv"))
        summary = Path(folder) / "summary.csv"
        summarise_runs(metrics, Path(folder) / "runs.csv", summary)
        return card_test_metrics(summary, survey, model)


def card_test_metrics(path: Path, survey: str, model: str) -> dict:
    """Mean, std over seeds and 95% interval over test sources of each card metric, from a study's
    tables/summary.csv (its scratch row) or a published metrics/summary.json ({survey: {model: ...}})."""
    if path.suffix == ".json":
        row = json.loads(path.read_text())[survey][model]
    else:
        table = pd.read_csv(path)
        table = table[(table["model"] == model) & (table["survey"] == survey)]
        if "kind" in table:
            table = table[table["kind"] == "scratch"]
        if len(table) != 1:
            raise ValueError(f"{path}: {len(table)} scratch rows for {model} on {survey}, expected 1")
        row = table.iloc[0].to_dict()
    found = {"n_test": int(row["n_test"])}
    metrics = [key[:-len("_mean")] for key in row if key.endswith("_mean") and not _missing(row[key])
               and key.split("_")[0] in CARD_METRICS and "seed" not in key]
    for metric in sorted(metrics, key=lambda name: (CARD_METRICS.index(name.split("_")[0]), name)):
        found[metric] = {part: round(float(row[f"{metric}_{part}"]), 4) for part in ("mean", "std", "ci_low", "ci_high")
                         if f"{metric}_{part}" in row and not _missing(row[f"{metric}_{part}"])}
    return found


def _optional_float(value) -> float | None:
    return None if _missing(value) else float(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _training(config: dict, dataset: dict, checkpoints: list[dict]) -> dict:
    splits, counts = dataset["split"], {}
    for split in sorted(set(splits.tolist())):
        counts[split] = int((splits == split).sum())
    validation = len(checkpoints[0]["validation_names"])
    return {"catalogues": catalogue_paths(config["catalogue"]), "dataset_sha256": checkpoints[0]["dataset_sha256"],
            "sources_per_split": counts, "validation_sources": validation,
            "validation": config["train"]["validation"], "epochs": int(config["train"]["epochs"]),
            "best_epochs": [int(c["best_epoch"]) for c in checkpoints],
            "precision": sorted({c.get("precision", "fp32") for c in checkpoints}),
            "parameters": int(checkpoints[0]["parameters"]), "neighbours": config["catalogue"].get("neighbours")}


def build_card(name: str, entry: dict, config: dict) -> tuple[dict, dict[str, str]]:
    """(card, {file name in the folder: the study's checkpoint}) for registry entry ``entry``."""
    results, survey, model = config["results_dir"], entry["survey"], entry["model"]
    seeds = list(config["train"]["seeds"])
    paths = classify.checkpoint_paths(REPO / results, survey, model, seeds)
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"shipped model {name}: {len(missing)} checkpoint(s) of the study missing, e.g. "
                                f"{missing[0]}; run the study first ({' '.join(entry['configs'])})")
    loaded = classify.load_models(paths)
    checkpoints = [checkpoint for _, checkpoint in loaded]
    dataset_path = REPO / layout.dataset(results, survey)
    dataset = load_dataset(dataset_path)
    ood, _ = classify.ood_threshold(loaded, dataset, float(entry.get("ood_percentile", 95)))
    files = {f"seed{seed}.pt": path for seed, path in zip(seeds, paths)}
    survey_config = config["surveys"][survey]
    card = {
        "name": name, "model": model, "survey": survey, "skyview_name": survey_config["skyview_name"],
        "pixels": int(survey_config["pixels"]), "image_size": int(checkpoints[0]["image_size"]),
        "pixel_scale_arcsec": _optional_float(checkpoints[0]["pixel_scale_arcsec"]), "preprocess": config["preprocess"],
        "class_names": list(checkpoints[0]["class_names"]), "seeds": seeds,
        "files": {file_name: sha256_file(path) for file_name, path in files.items()},
        "ood": {key: ood[key] for key in ("method", "percentile", "threshold", "validation_sources",
                                          "flagged_fraction_on_validation")},
        "test_metrics": scored_test_metrics(paths, dataset_path, survey, model, seeds),
        "training": _training(config, dataset, checkpoints),
        "study": {"configs": entry["configs"], "results_dir": results},
        **{key: entry[key] for key in ("title", "training_data", "intended_use", "failure_cases", "references")},
    }
    return card, files


def _metric_line(metric: str, values: dict) -> str:
    return (f"| {metric} | {values['mean']:.3f} | {values.get('std', float('nan')):.3f} | "
            f"{values.get('ci_low', float('nan')):.3f} - {values.get('ci_high', float('nan')):.3f} |")


def _scale(card: dict) -> str:
    scale = card["pixel_scale_arcsec"]
    return "an unrecorded pixel scale" if scale is None else f"{scale:.3f} arcsec/pixel"


def model_card_text(card: dict) -> str:
    training, metrics = card["training"], card["test_metrics"]
    lines = [
        f"# {card['title']}", "",
        "Generated by `rgmorph models export` from card.json; do not edit by hand.", "",
        f"- **Variant:** `{card['model']}`, {training['parameters']:,} parameters, {len(card['files'])} seeds "
        f"({', '.join(map(str, card['seeds']))}): probabilities are the mean over seeds.",
        f"- **Classes:** {', '.join(card['class_names'])}",
        f"- **Input:** {card['survey']} ({card['skyview_name']}) cutouts of {card['pixels']} x {card['pixels']} pixels, "
        f"{card['image_size']} px at {_scale(card)} after preprocessing "
        f"(sigma clip {card['preprocess']['sigma']}, crop {card['preprocess']['crop'] or 'none'}, "
        f"resize {card['preprocess']['size'] or 'none'}); `rgmorph classify` checks the size and scale.",
        f"- **Study:** `{' '.join(card['study']['configs'])}`, results in `{card['study']['results_dir']}`", "",
        "## Training data", "", card["training_data"], "",
        f"Sources per split: {', '.join(f'{k} {v}' for k, v in training['sources_per_split'].items())}; "
        f"{training['validation_sources']} of the training sources held out for selection ({training['validation']}); "
        f"{training['epochs']} epochs, best epoch per seed {training['best_epochs']} (on validation loss), "
        f"precision {', '.join(training['precision'])}. Dataset sha256 `{training['dataset_sha256'][:16]}...`.", "",
        f"## Test metrics ({metrics['n_test']} test sources never used for training or selection)", "",
        "| metric | mean over seeds | std | 95% interval over sources |", "|---|---|---|---|",
        *[_metric_line(metric, values) for metric, values in metrics.items() if isinstance(values, dict)], "",
        "## Out-of-distribution flag", "",
        f"{card['ood']['method']}; threshold {card['ood']['threshold']:.4f}, the {card['ood']['percentile']:g}th "
        f"percentile over {card['ood']['validation_sources']} validation sources: a source scoring above it is "
        "flagged `ood` in the classifications.", "",
        "## Intended use", "", card["intended_use"], "",
        "## Known failure cases", "", *[f"- {case}" for case in card["failure_cases"]], "",
        "## Files", "", "| file | sha256 |", "|---|---|",
        *[f"| {file_name} | `{sha}` |" for file_name, sha in card["files"].items()], "",
        "## References", "", *[f"- {reference}" for reference in card["references"]], "",
    ]
    return "\n".join(lines)


def write_model_card(card: dict, path: Path) -> None:
    write_bytes_atomic(path, model_card_text(card).encode())

