"""The whole study of a workflow config (every variant x survey x seed, plus transfer runs) from
prepared datasets, without Snakemake: the same training, evaluation and summary functions the
workflow's rules call, in the same file layout, scheduled by a small process pool.

Snakemake stays the pipeline's scheduler. This driver exists for machines that have the datasets
but not the pipeline's other dependencies (a GPU node without Snakemake or astropy) and to time the
paper config end to end::

    python -m rgmorph.study --config config/config.yaml --datasets DIR_WITH_SURVEY_NPZ --results DIR

Training jobs (one per (survey, model) and per transfer direction, each training all seeds) run
``--gpu-jobs`` at a time; evaluations and the Gabor SVM run ``--cpu-jobs`` at a time on the CPU.
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import copy
import importlib.util
import logging
import multiprocessing
import sys
import time
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


# ------------------------------------------------------------- config helpers (also used by the rules)


def model_train_settings(config: dict, model: str) -> dict:
    """The training settings of one model from a (defaults-filled) workflow config: train.* with
    train.per_model[model] on top, the augmentation and the model's constructor options."""
    train = config["train"]
    settings = {key: value for key, value in train.items()
                if key not in ("models", "seeds", "model_options", "per_model", "threads")}
    settings.update(train.get("per_model", {}).get(model, {}))
    settings["augment"] = config["augment"]
    settings["model_options"] = train.get("model_options", {}).get(model, {})
    return settings


def transfer_train_settings(config: dict, model: str) -> dict:
    """A model's fine-tuning settings: its training settings with transfer.* (and transfer.per_model[model])
    on top."""
    transfer = config.get("transfer", {})
    settings = model_train_settings(config, model)
    settings.update({key: value for key, value in transfer.items()
                     if key not in ("models", "directions", "freeze", "reinitialise", "batch_norm", "per_model")})
    settings.update(transfer.get("per_model", {}).get(model, {}))
    return settings


def transfer_run_files(config: dict, results: str, name: str) -> list[str]:
    """One path per transfer run (model, direction, seed) for a per-run file such as 'metrics.json'."""
    from rgmorph.transfer import transfer_plan

    area = "models" if name in ("checkpoint.pt", "history.csv") else "evaluation"
    names, directions = transfer_plan(config)
    return [f"{results}/{area}/{target}/{model}/transfer-from-{source}/seed{seed}/{name}"
            for model in names for source, target in directions for seed in config["train"]["seeds"]]


def with_defaults(config: dict, schema: dict) -> dict:
    """``config`` with the schema's defaults filled in (as Snakemake's validate(set_default=True) does)."""
    config = copy.deepcopy(config)

    def fill(value, part):
        if not isinstance(value, dict) or part.get("type") not in ("object", None):
            return
        for key, sub in part.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                fill(value[key], sub)
        extra = part.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(value) - set(part.get("properties", {})):
                fill(value[key], extra)

    fill(config, schema)
    return config


def _deep_update(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(paths, overrides: dict | None = None) -> dict:
    config: dict = {}
    for path in paths:
        _deep_update(config, yaml.safe_load(Path(path).read_text()) or {})
    _deep_update(config, overrides or {})
    return with_defaults(config, yaml.safe_load(SCHEMA.read_text()))


def parse_override(text: str) -> dict:
    """'train.epochs=5' -> {'train': {'epochs': 5}} (the value read as YAML)."""
    key, _, value = text.partition("=")
    result: dict = {}
    node = result
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)
    return result


# ------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class TrainJob:
    survey: str
    model: str
    source: str | None = None  # pre-training survey of a transfer job

    @property
    def folder(self) -> str:
        return f"{self.survey}/{self.model}" + (f"/transfer-from-{self.source}" if self.source else "")

    @property
    def name(self) -> str:
        return f"{self.model} {self.source + ' -> ' if self.source else ''}{self.survey}"


def plan(config: dict) -> tuple[list[TrainJob], list[TrainJob]]:
    """(from-scratch jobs, transfer jobs) of a config."""
    from rgmorph.transfer import transfer_plan

    scratch = [TrainJob(survey, model) for model in config["train"]["models"] for survey in config["surveys"]]
    names, directions = transfer_plan(config)
    return scratch, [TrainJob(target, model, source) for model in names for source, target in directions]


def run_paths(results: Path, job: TrainJob, seeds, name: str) -> list[Path]:
    area = "models" if name in ("checkpoint.pt", "history.csv") else "evaluation"
    return [results / area / job.folder / f"seed{seed}" / name for seed in seeds]


# ------------------------------------------------------------------------------- workers


def _ensure_dataset_loader() -> None:
    """Evaluation reads datasets through rgmorph.preprocess, which imports astropy (for FITS). Where
    astropy is missing, stand in a module with the one function evaluation needs."""
    if "rgmorph.preprocess" in sys.modules or importlib.util.find_spec("astropy") is not None:
        return
    from rgmorph.train import load_dataset

    stand_in = types.ModuleType("rgmorph.preprocess")
    stand_in.load_dataset = load_dataset
    sys.modules["rgmorph.preprocess"] = stand_in


def _worker_logging(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(path, mode="w")], force=True)
    logging.captureWarnings(True)


def _train_worker(job: TrainJob, config: dict, results: str) -> dict:
    from rgmorph.train import TrainSettings, TransferSpec, train_group
    from rgmorph.transfer import per_model

    results = Path(results)
    seeds = config["train"]["seeds"]
    log_path = results / "logs" / "train" / job.folder / "job.log"
    _worker_logging(log_path)
    started = time.monotonic()
    values = transfer_train_settings(config, job.model) if job.source else model_train_settings(config, job.model)
    settings = TrainSettings.from_mapping({**values, "threads": config["train"]["threads"]})
    transfer = None
    if job.source:
        transfer = TransferSpec(job.source, run_paths(results, TrainJob(job.source, job.model), seeds, "checkpoint.pt"),
                                frozen=per_model(config["transfer"].get("freeze", {}), job.model),
                                reinitialise=per_model(config["transfer"].get("reinitialise", {}), job.model),
                                batch_norm=config["transfer"].get("batch_norm", "adapt"))
    try:
        train_group(results / "datasets" / f"{job.survey}.npz", job.model, seeds, settings,
                    run_paths(results, job, seeds, "checkpoint.pt"), run_paths(results, job, seeds, "history.csv"),
                    transfer=transfer)
        return {"job": job.name, "ok": True, "seconds": time.monotonic() - started, "log": str(log_path)}
    except Exception:
        logging.getLogger("rgmorph").exception("failed")
        return {"job": job.name, "ok": False, "seconds": time.monotonic() - started, "log": str(log_path),
                "error": traceback.format_exc(limit=5)}


def _evaluate_worker(checkpoint: str, dataset: str, metrics: str, predictions: str) -> dict:
    import torch

    torch.set_num_threads(1)
    _ensure_dataset_loader()
    from rgmorph.evaluate import evaluate_checkpoint

    started = time.monotonic()
    try:
        # the forward passes on the GPU when there is one (AlexNet, VGG or ResNet with 8 views per test
        # image take a minute on one CPU core); the bootstrap on the CPU
        evaluate_checkpoint(checkpoint, dataset, metrics, predictions,
                            device="cuda" if torch.cuda.is_available() else "cpu")
        return {"job": metrics, "ok": True, "seconds": time.monotonic() - started}
    except Exception:
        return {"job": metrics, "ok": False, "seconds": time.monotonic() - started,
                "error": traceback.format_exc(limit=5)}


def _summarise_worker(metrics: list[str], runs_path: str, summary_path: str) -> str:
    _ensure_dataset_loader()
    from rgmorph.evaluate import summarise_runs

    summarise_runs(metrics, runs_path, summary_path)
    return summary_path


# ------------------------------------------------------------------------------- driver


def _kill(executor: futures.ProcessPoolExecutor) -> None:
    for process in list(getattr(executor, "_processes", {}).values()):  # the pool's own worker processes
        process.kill()

# rough training cost per image (forward + backward FLOPs at 150 x 150), for the order of the jobs
_RELATIVE_COST = {"dn_equivariant": 25, "alexnet": 14, "vgg": 10, "resnet": 8, "tang2019": 1, "lenet": 1}


def run_study(config: dict, datasets: Path, results: Path, gpu_jobs: int = 4, cpu_jobs: int = 8,
              deadline_s: float | None = None, hard_deadline_s: float | None = None) -> dict:
    """Train, evaluate and summarise every run of ``config``; returns timings and failures.

    After ``deadline_s`` seconds no further transfer job starts; at ``hard_deadline_s`` every unfinished
    job is stopped and what was evaluated so far is summarised.
    """
    import pandas as pd

    from rgmorph import config_check, models
    from rgmorph.transfer import transfer_problems

    config_check.raise_if_any(config_check.model_problems(config["train"]["models"], models.variants())
                              + transfer_problems(config.get("transfer", {})), "config")
    started = time.monotonic()
    results = Path(results).resolve()
    (results / "datasets").mkdir(parents=True, exist_ok=True)
    for survey in config["surveys"]:
        target = results / "datasets" / f"{survey}.npz"
        if not target.exists():
            target.symlink_to((Path(datasets) / f"{survey}.npz").resolve())
    seeds = config["train"]["seeds"]
    scratch, transfers = plan(config)
    estimators = [job for job in scratch if models.is_estimator(job.model)]
    # longest first: the slowest networks must not start last
    networks = sorted([job for job in scratch if not models.is_estimator(job.model)],
                      key=lambda job: -_RELATIVE_COST.get(job.model, 1))
    context = multiprocessing.get_context("spawn")
    outcomes, failures = [], []
    late = lambda: deadline_s is not None and time.monotonic() - started > deadline_s  # noqa: E731
    gpu = futures.ProcessPoolExecutor(gpu_jobs, mp_context=context)
    cpu = futures.ProcessPoolExecutor(cpu_jobs, mp_context=context)
    pending: dict[futures.Future, tuple[str, object]] = {}
    try:
        for job in networks:
            pending[gpu.submit(_train_worker, job, config, str(results))] = ("train", job)
        for job in estimators:
            pending[cpu.submit(_train_worker, job, config, str(results))] = ("train", job)
        finished_scratch: set[tuple[str, str]] = set()
        waiting = list(transfers)
        while pending:
            timeout = None if hard_deadline_s is None else max(0.0, hard_deadline_s - (time.monotonic() - started))
            done, _ = futures.wait(list(pending), timeout=timeout, return_when=futures.FIRST_COMPLETED)
            if not done:  # the hard deadline: stop everything, summarise what was evaluated
                log.warning("hard deadline: stopping %d unfinished jobs", len(pending))
                failures += [{"job": str(job), "ok": False, "error": f"{kind} stopped at the hard deadline"}
                             for kind, job in pending.values()]
                _kill(gpu)
                _kill(cpu)
                break
            for future in done:
                kind, job = pending.pop(future)
                try:
                    outcome = future.result()
                except Exception as error:  # a worker that died
                    outcome = {"job": str(job), "ok": False, "error": repr(error)}
                outcome["kind"] = kind
                outcomes.append(outcome)
                if not outcome["ok"]:
                    failures.append(outcome)
                    log.error("%s %s failed:\n%s", kind, outcome["job"], outcome.get("error", ""))
                    continue
                if kind != "train":
                    continue
                log.info("trained %s in %.1f s (%.0f s since start)", job.name, outcome["seconds"],
                         time.monotonic() - started)
                for checkpoint, metrics, predictions in zip(
                        run_paths(results, job, seeds, "checkpoint.pt"), run_paths(results, job, seeds, "metrics.json"),
                        run_paths(results, job, seeds, "predictions.csv")):
                    pending[cpu.submit(_evaluate_worker, str(checkpoint), str(results / "datasets" / f"{job.survey}.npz"),
                                       str(metrics), str(predictions))] = ("evaluate", metrics)
                if job.source is None:
                    finished_scratch.add((job.survey, job.model))
                for transfer in [t for t in waiting if (t.source, t.model) in finished_scratch]:
                    waiting.remove(transfer)
                    if late():
                        log.warning("deadline passed: %s not started", transfer.name)
                        failures.append({"job": transfer.name, "ok": False, "error": "not started: deadline"})
                        continue
                    pending[gpu.submit(_train_worker, transfer, config, str(results))] = ("train", transfer)
        else:
            for transfer in waiting:
                failures.append({"job": transfer.name, "ok": False, "error": "its pre-trained runs failed"})
    finally:
        gpu.shutdown(wait=False, cancel_futures=True)
        cpu.shutdown(wait=False, cancel_futures=True)
    train_seconds = time.monotonic() - started

    # summary: one bootstrap per variant, in parallel, then the tables the workflow writes
    metrics = sorted(results.glob("evaluation/**/metrics.json"))
    groups: dict[Path, list[str]] = {}
    for path in metrics:
        groups.setdefault(path.parent.parent, []).append(str(path))
    parts = results / "tables" / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    summarised = []
    with futures.ProcessPoolExecutor(cpu_jobs, mp_context=context) as pool:
        jobs = {pool.submit(_summarise_worker, paths, str(parts / f"runs{k}.csv"), str(parts / f"summary{k}.csv")): k
                for k, paths in enumerate(groups.values())}
        for future in futures.as_completed(jobs):
            try:
                future.result()
                summarised.append(jobs[future])
            except Exception as error:
                failures.append({"job": f"summary of {list(groups)[jobs[future]]}", "ok": False, "error": repr(error)})
    if not summarised:
        log.error("no run was evaluated")
        return {"seconds": time.monotonic() - started, "train_and_evaluate_seconds": train_seconds, "runs": 0,
                "failures": failures, "outcomes": outcomes, "summary": pd.DataFrame()}
    summarised.sort()
    runs = pd.concat([pd.read_csv(parts / f"runs{k}.csv") for k in summarised], ignore_index=True)
    runs = runs.sort_values(["model", "mode", "trained_on", "survey", "seed"]).reset_index(drop=True)
    summary = pd.concat([pd.read_csv(parts / f"summary{k}.csv") for k in summarised], ignore_index=True)
    summary = summary.sort_values(["model", "mode", "pretrained_on", "trained_on", "survey"]).reset_index(drop=True)
    runs.to_csv(results / "tables" / "runs.csv", index=False)
    summary.to_csv(results / "tables" / "summary.csv", index=False, float_format="%.4f")
    try:
        from rgmorph import tables

        tables.write_all(results / "tables" / "summary.csv",
                         {name: tuple(results / "tables" / f"{name}_table.{ext}" for ext in ("csv", "tex", "html"))
                          for name in ("main", "transfer", "published")}, tables.data_description(config))
    except Exception as error:
        log.warning("tables not written: %r", error)
    return {"seconds": time.monotonic() - started, "train_and_evaluate_seconds": train_seconds,
            "runs": len(runs), "failures": failures, "outcomes": outcomes, "summary": summary}


def describe(summary) -> str:
    """Mean +/- std over seeds of test accuracy and AUROC, one line per variant."""
    if summary.empty:
        return "(no run was evaluated)"
    lines = [f"{'model':<15} {'mode':<9} {'trained on':<10} {'tested on':<9} {'seeds':>5}  "
             f"{'accuracy':>15}  {'AUROC':>15}"]
    for row in summary.itertuples(index=False):
        lines.append(f"{row.model:<15} {row.mode:<9} {row.trained_on:<10} {row.survey:<9} {row.seeds:>5}  "
                     f"{row.accuracy_mean:.3f} +/- {row.accuracy_std:.3f}  {row.auroc_mean:.3f} +/- {row.auroc_std:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="workflow config file(s), merged in order")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. train.epochs=5 (the value is read as YAML)")
    parser.add_argument("--datasets", required=True, type=Path, help="folder with <survey>.npz for every survey")
    parser.add_argument("--results", required=True, type=Path)
    parser.add_argument("--gpu-jobs", type=int, default=4, help="training jobs at once")
    parser.add_argument("--cpu-jobs", type=int, default=8, help="evaluations (and Gabor SVM fits) at once")
    parser.add_argument("--deadline-s", type=float, default=None,
                        help="start no transfer job after this many seconds (what was trained is still summarised)")
    parser.add_argument("--hard-deadline-s", type=float, default=None,
                        help="stop every unfinished job after this many seconds and summarise what was evaluated")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides: dict = {}
    for text in arguments.set:
        _deep_update(overrides, parse_override(text))
    config = load_config(arguments.config, overrides)
    outcome = run_study(config, arguments.datasets, arguments.results, arguments.gpu_jobs, arguments.cpu_jobs,
                        arguments.deadline_s, arguments.hard_deadline_s)
    print(describe(outcome["summary"]))
    trained = [item for item in outcome["outcomes"] if item.get("kind") == "train" and item["ok"]]
    print(f"\n{len(trained)} training jobs, {outcome['runs']} evaluated runs, {len(outcome['failures'])} failures; "
          f"training + evaluation {outcome['train_and_evaluate_seconds']:.1f} s, end to end {outcome['seconds']:.1f} s")
    for failure in outcome["failures"]:
        print(f"FAILED {failure['job']}: {failure.get('error', '')[-800:]}")
    return 0 if not outcome["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
