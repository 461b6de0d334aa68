"""A tiny results tree in the workflow's layout, built in seconds, for the evaluation, table,
figure and provenance tests: two surveys of synthetic FRI/FRII images (conftest's), with fake raw
cutout files whose sha256 the datasets record, one-epoch models, metrics and predictions,
provenance sidecars written as the workflow scripts write them, and the summary tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from conftest import write_synthetic_dataset
from rgmorph import provenance
from rgmorph.evaluate import evaluate_checkpoint, summarise_runs
from rgmorph.files import sha256_file
from rgmorph.train import TrainSettings, train_seeds

SURVEYS = ("FIRST", "NVSS")
SEEDS = (0, 1)
MODEL = "tang2019"
CONFIG = {"results_dir": "results", "catalogue": {"path": "catalogue.csv"}, "surveys": {s: {} for s in SURVEYS},
          "train": {"models": [MODEL], "seeds": list(SEEDS), "epochs": 1}}


def _dataset(results: Path, survey: str, catalogue: pd.DataFrame | None) -> tuple[Path, pd.DataFrame]:
    raw = write_synthetic_dataset(results / f"raw-{survey}.npz", per_class=8, size=96, seed=len(survey))
    with np.load(raw) as data:
        arrays = {key: data[key] for key in data.files}
    raw.unlink()
    cutouts = results / "cutouts" / survey
    cutouts.mkdir(parents=True)
    files, hashes = [], []
    for k, name in enumerate(arrays["names"]):
        file = f"{100 + k:.5f}+{10 + k:.5f}.fits"
        (cutouts / file).write_bytes(f"SIMPLE fake {survey} cutout of {name}".encode())
        files.append(file)
        hashes.append(sha256_file(cutouts / file))
    arrays["sha256"] = np.array(hashes)
    arrays["survey"] = np.array(survey)
    path = results / "datasets" / f"{survey}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    pd.DataFrame({"name": arrays["names"], "survey": survey, "file": files, "sha256": hashes, "status": "ok",
                  "detail": ""}).to_csv(cutouts / "manifest.csv", index=False)
    if catalogue is None:
        catalogue = pd.DataFrame({"name": arrays["names"], "ra_deg": 100 + np.arange(len(hashes)),
                                  "dec_deg": 10 + np.arange(len(hashes)),
                                  "class_name": np.array(["FRI", "FRII"])[arrays["labels"]],
                                  "label": arrays["labels"], "split": arrays["split"]})
    return path, catalogue


def build(root: Path, n_resamples: int = 50) -> dict:
    """Write the tree under ``root``/results; return its paths."""
    results = root / "results"
    results.mkdir(parents=True)
    (root / "catalogue.csv").write_text("name,ra,dec,fr_class,split\n")
    catalogue = None
    datasets = {}
    for survey in SURVEYS:
        datasets[survey], catalogue = _dataset(results, survey, catalogue)
    sources = results / "catalogue" / "sources.csv"
    sources.parent.mkdir(parents=True)
    catalogue.to_csv(sources, index=False)
    for survey, path in datasets.items():
        manifest = results / "cutouts" / survey / "manifest.csv"
        provenance.write_provenance(path, "dataset", inputs={"sources": sources, "manifest": manifest,
                                                             "catalogue": root / "catalogue.csv"},
                                    details=provenance.dataset_details(path, manifest, sources), rule="preprocess")
    metrics, predictions, histories, checkpoints = [], [], [], []
    settings = TrainSettings(epochs=1, batch_size=8, threads=1, validation_fraction=0.25)
    for survey in SURVEYS:
        for seed in SEEDS:
            run = results / "models" / survey / MODEL / f"seed{seed}"
            train_seeds(datasets[survey], MODEL, [seed], settings, [run / "checkpoint.pt"], [run / "history.csv"])
            for output in (run / "checkpoint.pt", run / "history.csv"):
                provenance.write_provenance(output, "model", inputs={"dataset": datasets[survey]}, rule="train")
            evaluation = results / "evaluation" / survey / MODEL / f"seed{seed}"
            evaluate_checkpoint(run / "checkpoint.pt", datasets[survey], evaluation / "metrics.json",
                                evaluation / "predictions.csv", n_resamples=n_resamples)
            for output, kind in (("metrics.json", "metrics"), ("predictions.csv", "predictions")):
                provenance.write_provenance(evaluation / output, kind, rule="evaluate",
                                            inputs={"checkpoint": run / "checkpoint.pt", "dataset": datasets[survey]})
            metrics.append(evaluation / "metrics.json")
            predictions.append(evaluation / "predictions.csv")
            histories.append(run / "history.csv")
            checkpoints.append(run / "checkpoint.pt")
    tables = results / "tables"
    summarise_runs(metrics, tables / "runs.csv", tables / "summary.csv", predictions, n_resamples=n_resamples)
    for output in (tables / "runs.csv", tables / "summary.csv"):
        provenance.write_provenance(output, "table", inputs={"metrics": metrics, "predictions": predictions},
                                    rule="summarise")
    return {"results": results, "datasets": [datasets[s] for s in SURVEYS], "metrics": metrics,
            "predictions": predictions, "histories": histories, "checkpoints": checkpoints, "sources": sources,
            "runs": tables / "runs.csv", "summary": tables / "summary.csv"}


_SHARED: dict | None = None


def shared() -> dict:
    """One tree per test session, shared by the test modules that only read it."""
    global _SHARED
    if _SHARED is None:
        import atexit
        import shutil
        import tempfile

        root = Path(tempfile.mkdtemp(prefix="rgmorph-tiny-results-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SHARED = build(root)
    return _SHARED
