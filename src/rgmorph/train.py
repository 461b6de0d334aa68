"""Stage 5: train one model on one survey for several seeds at once; keep each seed's checkpoint best
on validation. Optionally start from another survey's checkpoints (transfer learning).

The whole dataset sits on the device as one tensor, augmentation is batched there, and the seeds
of a job train together as one seed batch (``rgmorph.batched.SeedBatch``); each seed still has its
own batches, augmentation, dropout, validation selection and checkpoint, so its results equal a run
of that seed alone. A stratified validation part is held out of the training split; the test
split is never read here. Before each validation, batch-norm statistics are recomputed over the
fit images with the current weights (``batch_norm_statistics``): the running averages lag behind
weights that move fast, and with them eval-mode validation scores swung from 0.80 to below the
majority class between epochs.

``train_seeds`` runs in four steps (``NetworkTraining``): prepare (load the data, split it, build the
seed batch), resume (from ``last.pt`` if it was saved with the same settings and data), the epochs,
then select (per seed, the best state on validation) and save. A job keeps its resumable state
(weights, optimiser, learning-rate schedule, random streams, best state, history so far) in ``last.pt``
beside its seed folders, written atomically after each epoch (or every ``checkpoint_interval_s``
seconds); a rerun with the same settings, thread count and dataset resumes from it, and on the CPU
ends bit for bit where an uninterrupted run ends. It is removed once the checkpoints are written.

``gabor_svm`` (Gabor features + SVM, not a network) trains in ``rgmorph.train_gabor``: its
hyperparameters C and gamma are chosen on the same validation hold-out. Checkpoints of both kinds are
built by ``rgmorph.checkpoint.build_checkpoint`` and hold tensors and plain data only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgmorph import models
from rgmorph.batched import Freeze, SeedBatch, SeedRun
from rgmorph.checkpoint import (build_checkpoint, load_checkpoint, load_safely, run_environment,  # noqa: F401
                                save_checkpoint, save_torch_atomic)
from rgmorph.files import sha256_file, write_csv_atomic
from rgmorph.train_settings import SelfSupervisedStart, TrainSettings, TransferSpec
from rgmorph.training_data import TrainingData, validation_split

__all__ = ["SelfSupervisedStart", "TrainSettings", "TransferSpec", "TrainingData", "NetworkTraining", "train_seeds", "load_checkpoint",
           "predict_logits", "validation_split", "select_device", "make_deterministic", "default_state_path"]

log = logging.getLogger(__name__)

RESUME_FORMAT = 4
# Settings that do not change what is computed (only where, how fast, or how often state is saved):
# a run resumes across changes of these. The thread count is not among them: on the CPU it can change
# the order of floating-point sums.
_NOT_IN_FINGERPRINT = ("device", "checkpoint_interval_s", "resume", "cuda_graphs", "strategy", "decision")
PHASES = ("training_steps", "batch_norm_statistics", "validation")


def select_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        log.warning("device %r requested but CUDA is not available: using the CPU", preference)
        return torch.device("cpu")
    return torch.device(preference)


def make_deterministic(seed: int, deterministic: bool = True) -> None:
    """Seed the global generators; with ``deterministic``, only deterministic kernels (and no TF32
    matrix products), else cuDNN's autotuner picks the fastest."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if hasattr(torch.utils, "deterministic"):
        # filling every new tensor with NaN costs a kernel per allocation; nothing here reads unset memory
        torch.utils.deterministic.fill_uninitialized_memory = False


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Eval-mode outputs for ``images``, computed where the model is, returned on the images' device."""
    model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else images.device
    return torch.cat([model(images[start:start + batch_size].to(device)).to(images.device)
                      for start in range(0, len(images), batch_size)])


def default_state_path(checkpoint_paths: Sequence[str | Path]) -> Path:
    """last.pt of a job: beside its seed folders (their common parent)."""
    parents = {Path(path).parent.parent for path in checkpoint_paths}
    parent = parents.pop() if len(parents) == 1 else Path(os.path.commonpath([str(p) for p in parents]))
    return parent / "last.pt"


def _fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _better(score: dict | None, previous: dict | None, selection_metric: str) -> bool:
    """Whether validation ``score`` beats ``previous`` (None: always)."""
    if score is None:
        return False
    if previous is None:
        return True
    if selection_metric == "val_loss":
        return score["val_loss"] < previous["val_loss"]
    return (score["val_accuracy"], -score["val_loss"]) > (previous["val_accuracy"], -previous["val_loss"])


def train_seeds(dataset_path: str | Path, model_name: str, seeds: Sequence[int], settings: TrainSettings,
                checkpoint_paths: Sequence[str | Path], history_paths: Sequence[str | Path],
                transfer: TransferSpec | None = None, state_path: str | Path | None = None,
                on_epoch_end: Callable[[int], None] | None = None,
                start: SelfSupervisedStart | None = None) -> list[dict]:
    """Train ``model_name`` on one dataset for every seed at once; write each seed's checkpoint (with its
    ``.run.json`` sidecar) and history; return the checkpoints as ``load_checkpoint`` reads them.

    ``state_path`` (default: last.pt beside the seed folders) holds the resumable state; ``on_epoch_end``
    is called after each epoch (and after the state is saved) with the epoch number; ``start``: begin from
    self-supervised pre-trained networks instead of the seed's random weights.
    """
    seeds = [int(seed) for seed in seeds]
    if not (len(seeds) == len(checkpoint_paths) == len(history_paths)):
        raise ValueError("one checkpoint and one history path per seed")
    if models.is_estimator(model_name):
        if transfer is not None or start is not None:
            raise ValueError(f"{model_name} is not a network: it cannot be fine-tuned")
        from rgmorph.train_gabor import train_gabor_seeds

        return train_gabor_seeds(dataset_path, model_name, seeds, settings, checkpoint_paths, history_paths)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    make_deterministic(seeds[0], settings.deterministic)
    state_path = Path(state_path) if state_path else default_state_path(checkpoint_paths)
    training = NetworkTraining(dataset_path, model_name, seeds, settings, transfer, state_path, start)
    training.resume()
    training.run_epochs(on_epoch_end)
    return training.select_and_save(checkpoint_paths, history_paths)


def _pretrained(checkpoints: Sequence[str | Path], count: int, model_name: str, settings: TrainSettings,
                data: TrainingData) -> tuple[list[dict], list[dict]]:
    """(state_dict, record) of the source checkpoint of each of ``count`` seeds; refused unless it is the
    same model, with the same options, classes and image size."""
    states, records = [], []
    for source_path in (Path(checkpoints[k]) for k in range(count)):
        source = load_safely(source_path)
        wanted = (("model_name", model_name), ("model_options", settings.model_options),
                  ("class_names", list(data.dataset["class_names"])), ("image_size", data.image_size))
        problems = [f"{key} {source.get(key)!r} != {value!r}" for key, value in wanted if source.get(key) != value]
        if problems:
            raise ValueError(f"cannot fine-tune from {source_path}: {'; '.join(problems)}")
        states.append(source["state_dict"])
        records.append({"path": str(source_path), "sha256": sha256_file(source_path), "survey": source["survey"],
                        "seed": source["seed"], "pixel_scale_arcsec": source.get("pixel_scale_arcsec"),
                        "pretraining": _pretraining_summary(source.get("pretraining"))})
    return states, records


def _pretraining_summary(pretraining: dict | None) -> dict | None:
    """A self-supervised checkpoint's method, settings and pool (count, sha256 of its table), not its sources."""
    if pretraining is None:
        return None
    pool = {key: value for key, value in pretraining["pool"].items() if key != "sources"}
    return {**{key: value for key, value in pretraining.items() if key not in ("pool", "history")}, "pool": pool}


class NetworkTraining:
    """One ``train_seeds`` job of a network: prepare, ``resume``, ``run_epochs``, ``select_and_save``."""

    def __init__(self, dataset_path: str | Path, model_name: str, seeds: list[int], settings: TrainSettings,
                 transfer: TransferSpec | None, state_path: Path, start: SelfSupervisedStart | None = None):
        self.model_name, self.seeds, self.settings, self.transfer = model_name, seeds, settings, transfer
        self.start = start
        self.state_path = state_path
        self.device = select_device(settings.device)
        self.data = TrainingData.load(dataset_path, settings)
        origin = transfer or start
        initial, self.pretrained = (_pretrained(origin.checkpoints, len(seeds), model_name, settings, self.data)
                                    if origin else ([None] * len(seeds), []))
        self.reinitialise = reinitialise = tuple(origin.reinitialise) if origin else ()
        freeze = Freeze(tuple(transfer.frozen), transfer.batch_norm) if transfer else Freeze()
        self.trainer = SeedBatch(model_name, [SeedRun(seed, 0, state, reinitialise) for seed, state in zip(seeds, initial)],
                                 [self.data.tensors()], settings, self.device,
                                 num_classes=len(self.data.dataset["class_names"]), freeze=freeze)
        # epochs are selected on one view ('auto': the plain one, 8 times cheaper than D4 every epoch);
        # 'auto' then scores each seed's selected state with D4 too and keeps the better (final_ttas)
        self.view = "none" if settings.test_time_augmentation == "auto" else settings.test_time_augmentation
        self.final_ttas = ["none", "d4"] if settings.test_time_augmentation == "auto" else [self.view]
        self.histories: list[list[dict]] = [[] for _ in seeds]
        self.best: dict[str, list[dict | None]] = {tta: [None for _ in seeds] for tta in self.final_ttas}
        self.first_epoch, self.elapsed_before = 1, 0.0
        # wall seconds per phase in this process (a resumed run counts only its own epochs): where a job's
        # time goes, e.g. whether validation or the training steps dominate on a GPU
        self.phase_seconds = dict.fromkeys(PHASES, 0.0)
        self._log_start()

    def _log_start(self) -> None:
        transfer, trainer = self.transfer, self.trainer
        log.info("%s on %s (%s%s), seeds %s trained together: %d parameters (%d trained); %d fit / %d validation "
                 "images; device %s, CUDA graphs %s, %s", self.model_name, self.data.survey,
                 "transfer" if transfer else "scratch",
                 f" from {transfer.source}, frozen {list(transfer.frozen) or 'none'} (batch norm: {transfer.batch_norm})"
                 if transfer else (" from self-supervised pre-training" if self.start else ""), self.seeds, trainer.parameter_count, trainer.trainable_count,
                 len(self.data.fit_index), len(self.data.validation_index), self.device,
                 "on" if trainer.use_graphs else "off", f"precision {trainer.precision} ({self.settings.precision})")

    def fingerprint(self) -> str:
        """What the resumable state depends on: the same fingerprint means the same rest of the run."""
        transfer = self.transfer
        return _fingerprint(
            format=RESUME_FORMAT, model=self.model_name, seeds=self.seeds, dataset_sha256=self.data.sha256,
            precision=self.trainer.precision,
            settings={key: value for key, value in asdict(self.settings).items() if key not in _NOT_IN_FINGERPRINT},
            pretrained=[item["sha256"] for item in self.pretrained], frozen=tuple(transfer.frozen) if transfer else (),
            reinitialise=list(self.reinitialise),
            frozen_batch_norm=transfer.batch_norm if transfer else None)

    def resume(self) -> None:
        """Continue from ``state_path`` if it holds the state of this same run (else start afresh)."""
        if not (self.settings.resume and self.state_path.is_file()):
            return
        try:
            saved = load_safely(self.state_path)
        except Exception as error:  # a damaged (or unsafe) file: start again
            log.warning("cannot read %s (%s): training from the start", self.state_path, error)
            return
        if saved.get("fingerprint") != self.fingerprint():
            log.info("%s belongs to other settings or data: training from the start", self.state_path)
            return
        self.trainer.load_state_dict(saved["trainer"])
        self.histories, self.best = saved["histories"], saved["best"]
        self.first_epoch, self.elapsed_before = saved["epoch"] + 1, saved["elapsed_seconds"]
        log.info("resuming from %s after epoch %d", self.state_path, saved["epoch"])

    def elapsed(self) -> float:
        """Wall seconds of training so far, counting those before a resume."""
        return self.elapsed_before + time.monotonic() - self.started

    def run_epochs(self, on_epoch_end: Callable[[int], None] | None = None) -> None:
        self.started = last_save = time.monotonic()
        for epoch in range(self.first_epoch, self.settings.epochs + 1):
            self.epoch(epoch)
            now = time.monotonic()
            if (self.settings.resume and epoch < self.settings.epochs
                    and now - last_save >= self.settings.checkpoint_interval_s):
                self.save_state(epoch)
                last_save = now
            if on_epoch_end is not None:
                on_epoch_end(epoch)

    def epoch(self, epoch: int) -> None:
        """Train one epoch, recompute batch-norm statistics, validate, keep the improved states, log."""
        trainer = self.trainer
        learning_rate = trainer.learning_rate
        phase_start = time.monotonic()
        train_loss, train_accuracy = trainer.train_epoch()  # reads the losses back: synchronised
        batch_norm_start = time.monotonic()
        trainer.recompute_batch_norm()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        validation_start = time.monotonic()
        scores = trainer.validate(self.view)
        self.phase_seconds["training_steps"] += batch_norm_start - phase_start
        self.phase_seconds["batch_norm_statistics"] += validation_start - batch_norm_start
        self.phase_seconds["validation"] += time.monotonic() - validation_start
        elapsed = self.elapsed()
        rows = [{"epoch": epoch, "train_loss": float(train_loss[k]), "train_accuracy": float(train_accuracy[k]),
                 "learning_rate": learning_rate, "seconds": elapsed} for k in range(len(self.seeds))]
        self._score(epoch, scores, rows)
        for k, row in enumerate(rows):
            self.histories[k].append(row)
            self._log_epoch(self.seeds[k], epoch, row)

    def _score(self, epoch: int, scores: tuple[np.ndarray, np.ndarray], rows: list[dict]) -> None:
        """Record the validation scores in ``rows``; keep the states of the seeds that improved."""
        improved = []
        for k, row in enumerate(rows):
            score = {"epoch": epoch, "val_loss": float(scores[0][k]), "val_accuracy": float(scores[1][k])}
            better = _better(score, self.best[self.view][k], self.settings.selection_metric)
            if better:
                self.best[self.view][k] = score
            improved.append(better)
            row.update({"val_loss": score["val_loss"], "val_accuracy": score["val_accuracy"], "best": better})
        self.trainer.keep_best(improved, tta=self.view)

    def _log_epoch(self, seed: int, epoch: int, row: dict) -> None:
        log.info("%s %s seed %d: epoch %d/%d lr %.2e train loss %.4f acc %.3f | val loss %.4f acc %.3f%s",
                 self.model_name, self.data.survey, seed, epoch, self.settings.epochs, row["learning_rate"],
                 row["train_loss"], row["train_accuracy"], row["val_loss"], row["val_accuracy"],
                 "  *" if row["best"] else "")

    def save_state(self, epoch: int) -> None:
        """Write the resumable state after ``epoch`` (atomically)."""
        save_torch_atomic(self.state_path, {"format": RESUME_FORMAT, "fingerprint": self.fingerprint(),
                                            "epoch": epoch, "elapsed_seconds": self.elapsed(),
                                            "trainer": self.trainer.state_dict(), "histories": self.histories,
                                            "best": self.best})

    def score_other_views(self) -> None:
        """Score each seed's selected state on validation with every other test-time augmentation of
        ``final_ttas`` (the same state, so the same epoch)."""
        for tta in self.final_ttas:
            if tta == self.view:
                continue
            losses, accuracies = self.trainer.validate(tta, best_of=self.view)
            self.best[tta] = [{"epoch": kept["epoch"], "val_loss": float(loss), "val_accuracy": float(accuracy)}
                              for kept, loss, accuracy in zip(self.best[self.view], losses, accuracies)]

    def chosen_tta(self, k: int) -> str:
        """The test-time augmentation under which seed ``k``'s selected state scores better on validation."""
        chosen = self.view
        for tta in self.final_ttas:
            if tta != self.view and _better(self.best[tta][k], self.best[chosen][k], self.settings.selection_metric):
                chosen = tta
        return chosen

    def checkpoint(self, k: int, chosen: str) -> dict:
        transfer = self.transfer
        origin = {"kind": "transfer" if transfer else "scratch",
                  "trained_on": transfer.source if transfer else self.data.survey,
                  "frozen": list(transfer.frozen) if transfer else []}
        if transfer:
            pretrained = self.pretrained[k]
            origin.update({"pretrained_on": transfer.source, "pretrained_checkpoint": pretrained["path"],
                           "pretrained_checkpoint_sha256": pretrained["sha256"],
                           "reinitialised": list(transfer.reinitialise), "frozen_batch_norm": transfer.batch_norm,
                           "pretrained_pixel_scale_arcsec": pretrained["pixel_scale_arcsec"]})
        if self.start:
            pretrained = self.pretrained[k]
            origin["self_supervised"] = {"checkpoint": pretrained["path"], "sha256": pretrained["sha256"],
                                         "reinitialised": list(self.start.reinitialise), **(pretrained["pretraining"] or {})}
        return build_checkpoint(
            model_name=self.model_name, settings=asdict(self.settings), data=self.data.record(), seed=self.seeds[k],
            seeds=self.seeds, best=self.best[chosen][k], parameters=self.trainer.parameter_count,
            trainable_parameters=self.trainer.trainable_count, origin=origin,
            state_dict=self.trainer.best_state(k, tta=self.view), test_time_augmentation=chosen,
            test_time_augmentation_scores={tta: self.best[tta][k] for tta in self.final_ttas},
            precision=self.trainer.precision)

    def select_and_save(self, checkpoint_paths: Sequence[str | Path], history_paths: Sequence[str | Path]) -> list[dict]:
        """Write each seed's checkpoint (its best state), sidecar and history; remove the resumable state."""
        validation_start = time.monotonic()
        self.score_other_views()
        self.phase_seconds["validation"] += time.monotonic() - validation_start
        train_seconds = self.elapsed()
        run_info = {"environment": run_environment(self.device), "train_seconds": train_seconds,
                    "phase_seconds": {key: round(value, 3) for key, value in self.phase_seconds.items()}}
        checkpoints = []
        for k, seed in enumerate(self.seeds):
            chosen = self.chosen_tta(k)
            checkpoints.append(save_checkpoint(checkpoint_paths[k], self.checkpoint(k, chosen), run_info))
            write_csv_atomic(history_paths[k], pd.DataFrame(self.histories[k]))
            kept = self.best[chosen][k]
            log.info("%s %s seed %d: best epoch %d (val loss %.4f, val accuracy %.3f%s)", self.model_name,
                     self.data.survey, seed, kept["epoch"], kept["val_loss"], kept["val_accuracy"],
                     f"; test-time augmentation {chosen}" if len(self.final_ttas) > 1 else "")
        self.state_path.unlink(missing_ok=True)
        log.info("%s on %s: %d seeds in %.1f s (this process: training steps %.1f s, batch-norm statistics %.1f s, "
                 "validation %.1f s)", self.model_name, self.data.survey, len(self.seeds), train_seconds,
                 *self.phase_seconds.values())
        return checkpoints
