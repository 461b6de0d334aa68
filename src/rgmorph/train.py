"""Stage 5: train one model on one survey for several seeds at once; keep each seed's checkpoint best
on validation. Optionally start from another survey's checkpoints (transfer learning).

The whole dataset sits on the device as one tensor, augmentation is batched there, and the seeds
of a job train together as one batched model (``rgmorph.batched``); each seed still has its own
batches, augmentation, dropout, validation selection and checkpoint, so its results equal a run
of that seed alone. A stratified validation part is held out of the training split; the test
split is never read here. Before each validation, batch-norm statistics are recomputed over the
fit images with the current weights (``batch_norm_statistics``): the running averages lag behind
weights that move fast, and with them eval-mode validation scores swung from 0.80 to below the
majority class between epochs.

A job keeps its resumable state (weights, optimiser, random streams, best state, history so far)
in ``last.pt`` beside its seed folders, written atomically after each epoch (or every
``checkpoint_interval_s`` seconds); a rerun with the same settings and dataset resumes from it,
and on the CPU ends bit for bit where an uninterrupted run ends. It is removed once the
checkpoints are written.

``gabor_svm`` (Gabor features + SVM, not a network) takes ``train_gabor_group`` instead: its
hyperparameters C and gamma are chosen on the same validation hold-out.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import rgmorph
from rgmorph import models
from rgmorph.batched import D4Average, EngineOptions, GroupTrainer, Member
from rgmorph.files import sha256_file, write_bytes_atomic, write_csv_atomic
from rgmorph.dataset import load_dataset

log = logging.getLogger(__name__)

RESUME_FORMAT = 1
# Settings that do not change what is computed (only where, how fast, or how often state is saved):
# a run resumes across changes of these.
_NOT_IN_FINGERPRINT = ("device", "threads", "checkpoint_interval_s", "resume", "cuda_graphs", "strategy")


@dataclass
class TrainSettings:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # or 'adamw'
    lr_schedule: str = "cosine"  # or 'constant'
    label_smoothing: float = 0.0
    validation_fraction: float = 0.2
    validation_seed: int = 2019
    selection_metric: str = "val_loss"  # or 'val_accuracy'
    test_time_augmentation: str = "none"  # 'd4': average the 8 D4 views in validation and at test time;
    # 'auto': validate both ways and keep, per seed, the better on validation
    augment: dict = field(default_factory=lambda: {"rotate": True, "hflip": True, "vflip": True})
    model_options: dict = field(default_factory=dict)
    device: str = "auto"
    threads: int | None = None
    batch_norm_statistics: str = "recomputed"  # or 'running' (see rgmorph.batched.EngineOptions)
    precision: str = "fp32"  # or 'bf16' (autocast on CUDA)
    cuda_graphs: bool = True
    strategy: str = "auto"  # how the seeds' passes run: 'vmap', 'loop' or 'auto' (see rgmorph.batched)
    deterministic: bool = True
    resume: bool = True
    checkpoint_interval_s: float = 0.0  # least seconds between two writes of last.pt; 0: every epoch

    @classmethod
    def from_mapping(cls, values: dict) -> TrainSettings:
        """Settings from a config mapping; keys that are not settings (models, seeds, ...) are ignored."""
        known = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


@dataclass
class TransferSpec:
    """Fine-tune from checkpoints trained on another survey, one per seed."""

    source: str  # the survey the checkpoints were trained on
    checkpoints: Sequence[str | Path]
    frozen: Sequence[str] = ()  # module prefixes whose weights stay as pre-trained (e.g. 'features')
    reinitialise: Sequence[str] = ()  # module prefixes re-initialised from the seed instead of copied
    # batch norm in frozen layers: 'adapt' to the new survey's statistics, or 'keep' the pre-trained ones
    batch_norm: str = "adapt"


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


def validation_split(labels: np.ndarray, candidates: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of the training indices ``candidates`` into (fit, validation)."""
    rng = np.random.default_rng(seed)
    validation = []
    for label in np.unique(labels[candidates]):
        members = rng.permutation(candidates[labels[candidates] == label])
        validation.extend(members[: max(1, int(round(fraction * len(members))))])
    validation = np.sort(np.array(validation, dtype=np.int64))
    fit = np.setdiff1d(candidates, validation)
    return fit, validation


def run_environment(device: torch.device) -> dict:
    return {
        "rgmorph": rgmorph.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
    }


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Eval-mode outputs for ``images``, computed where the model is, returned on the images' device."""
    model.eval()
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else images.device
    return torch.cat([model(images[start:start + batch_size].to(device)).to(images.device)
                      for start in range(0, len(images), batch_size)])


def _fit_and_validation(dataset: dict, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    train_candidates = np.flatnonzero(dataset["split"] == "train")
    return validation_split(dataset["labels"], train_candidates, settings.validation_fraction, settings.validation_seed)


def _fingerprint(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _save_torch_atomic(path: str | Path, payload) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def default_state_path(checkpoint_paths: Sequence[str | Path]) -> Path:
    """last.pt of a job: beside its seed folders (their common parent)."""
    parents = {Path(path).parent.parent for path in checkpoint_paths}
    parent = parents.pop() if len(parents) == 1 else Path(os.path.commonpath([str(p) for p in parents]))
    return parent / "last.pt"


def _engine_options(settings: TrainSettings, frozen: Sequence[str], frozen_batch_norm: str = "adapt") -> EngineOptions:
    return EngineOptions(batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                         weight_decay=settings.weight_decay, optimizer=settings.optimizer,
                         label_smoothing=settings.label_smoothing, augment=dict(settings.augment),
                         test_time_augmentation="d4" if settings.test_time_augmentation == "d4" else "none",
                         precision=settings.precision, batch_norm_statistics=settings.batch_norm_statistics,
                         strategy=settings.strategy,
                         cuda_graphs=settings.cuda_graphs, frozen=tuple(frozen), frozen_batch_norm=frozen_batch_norm)


def train_group(dataset_path: str | Path, model_name: str, seeds: Sequence[int], settings: TrainSettings,
                checkpoint_paths: Sequence[str | Path], history_paths: Sequence[str | Path],
                transfer: TransferSpec | None = None, state_path: str | Path | None = None,
                on_epoch_end: Callable[[int], None] | None = None) -> list[dict]:
    """Train ``model_name`` on one dataset for every seed at once; write each seed's checkpoint and history.

    ``state_path`` (default: last.pt beside the seed folders) holds the resumable state; ``on_epoch_end``
    is called after each epoch (and after the state is saved) with the epoch number.
    """
    if models.is_estimator(model_name):
        return train_gabor_group(dataset_path, model_name, seeds, settings, checkpoint_paths, history_paths)
    seeds = [int(seed) for seed in seeds]
    if not (len(seeds) == len(checkpoint_paths) == len(history_paths)):
        raise ValueError("one checkpoint and one history path per seed")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    make_deterministic(seeds[0], settings.deterministic)
    device = select_device(settings.device)
    dataset = load_dataset(dataset_path)
    dataset_sha = sha256_file(dataset_path)
    fit_index, validation_index = _fit_and_validation(dataset, settings)
    images = torch.from_numpy(dataset["images"]).unsqueeze(1)
    labels = torch.from_numpy(dataset["labels"])
    image_size = int(images.shape[-1])
    class_names = dataset["class_names"]

    frozen = tuple(transfer.frozen) if transfer else ()
    members, pretrained = [], []
    for index, seed in enumerate(seeds):
        initial = None
        if transfer:
            source_path = Path(transfer.checkpoints[index])
            source = torch.load(source_path, map_location="cpu", weights_only=False)
            problems = [f"{key} {source.get(key)!r} != {value!r}" for key, value in
                        (("model_name", model_name), ("model_options", settings.model_options),
                         ("class_names", class_names), ("image_size", image_size)) if source.get(key) != value]
            if problems:
                raise ValueError(f"cannot fine-tune from {source_path}: {'; '.join(problems)}")
            initial = source["state_dict"]
            pretrained.append({"path": str(source_path), "sha256": sha256_file(source_path),
                               "survey": source["survey"], "seed": source["seed"],
                               "pixel_scale_arcsec": source.get("pixel_scale_arcsec")})
        members.append(Member(seed=seed, data=0, initial_state=initial,
                              reinitialise=tuple(transfer.reinitialise) if transfer else ()))
    trainer = GroupTrainer(model_name, settings.model_options, members,
                           [(images[fit_index], labels[fit_index], images[validation_index], labels[validation_index])],
                           _engine_options(settings, frozen, transfer.batch_norm if transfer else "adapt"), device,
                           num_classes=len(class_names))
    run_mode = "transfer" if transfer else "scratch"
    log.info("%s on %s (%s%s), seeds %s trained together: %d parameters (%d trained); %d fit / %d validation "
             "images; device %s, CUDA graphs %s, %s", model_name, dataset["survey"], run_mode,
             f" from {transfer.source}, frozen {list(frozen) or 'none'} (batch norm: {transfer.batch_norm})"
             if transfer else "", seeds,
             trainer.parameter_count, trainer.trainable_count, len(fit_index), len(validation_index), device,
             "on" if trainer.use_graphs else "off", settings.precision)

    fingerprint = _fingerprint(
        format=RESUME_FORMAT, model=model_name, seeds=seeds, dataset_sha256=dataset_sha,
        settings={key: value for key, value in asdict(settings).items() if key not in _NOT_IN_FINGERPRINT},
        pretrained=[item["sha256"] for item in pretrained], frozen=frozen,
        reinitialise=list(transfer.reinitialise) if transfer else [],
        frozen_batch_norm=transfer.batch_norm if transfer else None)
    state_path = Path(state_path) if state_path else default_state_path(checkpoint_paths)
    # 'auto' scores validation both ways every epoch, keeps a best state for each, and keeps per seed
    # the way whose best validation score is better
    modes = ["none", "d4"] if settings.test_time_augmentation == "auto" else [settings.test_time_augmentation]
    histories: list[list[dict]] = [[] for _ in seeds]
    best: dict[str, list[dict | None]] = {mode: [None for _ in seeds] for mode in modes}
    first_epoch, elapsed_before = 1, 0.0
    if settings.resume and state_path.is_file():
        try:
            saved = torch.load(state_path, map_location="cpu", weights_only=False)
        except Exception as error:  # a damaged file: start again
            log.warning("cannot read %s (%s): training from the start", state_path, error)
            saved = None
        if saved is not None and saved.get("fingerprint") == fingerprint:
            trainer.load_state_dict(saved["trainer"])
            histories, best = saved["histories"], saved["best"]
            first_epoch, elapsed_before = saved["epoch"] + 1, saved["elapsed_seconds"]
            log.info("resuming from %s after epoch %d", state_path, saved["epoch"])
        elif saved is not None:
            log.info("%s belongs to other settings or data: training from the start", state_path)

    started = time.monotonic()
    last_save = started
    # wall seconds per phase in this process (a resumed run counts only its own epochs): where a job's time
    # goes, e.g. whether validation or the training steps dominate on a GPU
    phase_seconds = dict.fromkeys(("training_steps", "batch_norm_statistics", "validation"), 0.0)
    for epoch in range(first_epoch, settings.epochs + 1):
        learning_rate = trainer.learning_rate(epoch, settings.epochs, settings.lr_schedule)
        phase_start = time.monotonic()
        train_loss, train_accuracy = trainer.train_epoch(learning_rate)  # reads the losses back: synchronised
        batch_norm_start = time.monotonic()
        trainer.recompute_batch_norm()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        validation_start = time.monotonic()
        scores = {mode: trainer.validate(mode) for mode in modes}
        phase_seconds["training_steps"] += batch_norm_start - phase_start
        phase_seconds["batch_norm_statistics"] += validation_start - batch_norm_start
        phase_seconds["validation"] += time.monotonic() - validation_start
        elapsed = elapsed_before + time.monotonic() - started
        rows = [{"epoch": epoch, "train_loss": float(train_loss[k]), "train_accuracy": float(train_accuracy[k]),
                 "learning_rate": learning_rate, "seconds": elapsed} for k in range(len(seeds))]
        for mode in modes:
            improved = []
            for k, row in enumerate(rows):
                score = {"epoch": epoch, "val_loss": float(scores[mode][0][k]), "val_accuracy": float(scores[mode][1][k])}
                better = _better(score, best[mode][k], settings.selection_metric)
                if better:
                    best[mode][k] = score
                improved.append(better)
                row.update({f"val_loss_{mode}": score["val_loss"], f"val_accuracy_{mode}": score["val_accuracy"],
                            f"best_{mode}": better})
            trainer.keep_best(improved, slot=mode)
        for k, (seed, row) in enumerate(zip(seeds, rows)):
            histories[k].append(row)
            log.info("%s %s seed %d: epoch %d/%d lr %.2e train loss %.4f acc %.3f | val loss %s acc %s%s",
                     model_name, dataset["survey"], seed, epoch, settings.epochs, learning_rate, row["train_loss"],
                     row["train_accuracy"], "/".join(f"{row[f'val_loss_{mode}']:.4f}" for mode in modes),
                     "/".join(f"{row[f'val_accuracy_{mode}']:.3f}" for mode in modes),
                     "  *" if any(row[f"best_{mode}"] for mode in modes) else "")
        now = time.monotonic()
        if settings.resume and epoch < settings.epochs and now - last_save >= settings.checkpoint_interval_s:
            _save_torch_atomic(state_path, {"format": RESUME_FORMAT, "fingerprint": fingerprint, "epoch": epoch,
                                            "elapsed_seconds": elapsed, "trainer": trainer.state_dict(),
                                            "histories": histories, "best": best})
            last_save = now
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    train_seconds = elapsed_before + time.monotonic() - started
    checkpoints = []
    for k, seed in enumerate(seeds):
        chosen = modes[0]
        for mode in modes[1:]:
            if _better(best[mode][k], best[chosen][k], settings.selection_metric):
                chosen = mode
        kept = best[chosen][k]
        history = pd.DataFrame(histories[k])
        history["val_loss"], history["val_accuracy"] = history[f"val_loss_{chosen}"], history[f"val_accuracy_{chosen}"]
        history["best"] = history[f"best_{chosen}"]
        if len(modes) == 1:
            history = history.drop(columns=[f"{prefix}_{chosen}" for prefix in ("val_loss", "val_accuracy", "best")])
        checkpoint = {
            "model_name": model_name,
            "model_options": settings.model_options,
            "state_dict": trainer.member_state(k, slot=chosen),
            "class_names": class_names,
            "survey": dataset["survey"],
            "image_size": image_size,
            "seed": seed,
            "parameters": trainer.parameter_count,
            "trainable_parameters": trainer.trainable_count,
            "best_epoch": kept["epoch"],
            "best_val_loss": kept["val_loss"],
            "best_val_accuracy": kept["val_accuracy"],
            "validation_names": dataset["names"][validation_index].tolist(),
            "settings": asdict(settings),
            "test_time_augmentation": chosen,
            "test_time_augmentation_scores": {mode: best[mode][k] for mode in modes},
            "dataset": str(dataset_path),
            "dataset_sha256": dataset_sha,
            "pixel_scale_arcsec": _pixel_scale(dataset),
            "environment": run_environment(device),
            "train_seconds": train_seconds,
            "phase_seconds": {key: round(value, 3) for key, value in phase_seconds.items()},
            "trained_with_seeds": seeds,
            "mode": run_mode,
            "trained_on": transfer.source if transfer else dataset["survey"],
            "frozen": list(frozen),
        }
        if transfer:
            checkpoint.update({
                "pretrained_on": transfer.source,
                "pretrained_checkpoint": pretrained[k]["path"],
                "pretrained_checkpoint_sha256": pretrained[k]["sha256"],
                "reinitialised": list(transfer.reinitialise),
                "frozen_batch_norm": transfer.batch_norm,
                "pretrained_pixel_scale_arcsec": pretrained[k]["pixel_scale_arcsec"],
            })
        _save_torch_atomic(checkpoint_paths[k], checkpoint)
        write_csv_atomic(history_paths[k], history)
        log.info("%s %s seed %d: best epoch %d (val loss %.4f, val accuracy %.3f%s)", model_name, dataset["survey"],
                 seed, kept["epoch"], kept["val_loss"], kept["val_accuracy"],
                 f"; test-time augmentation {chosen}" if len(modes) > 1 else "")
        checkpoints.append(checkpoint)
    state_path.unlink(missing_ok=True)
    log.info("%s on %s: %d seeds in %.1f s (this process: training steps %.1f s, batch-norm statistics %.1f s, "
             "validation %.1f s)", model_name, dataset["survey"], len(seeds), train_seconds,
             *phase_seconds.values())
    return checkpoints


def _better(score: dict | None, previous: dict | None, selection_metric: str) -> bool:
    """Whether validation ``score`` beats ``previous`` (None: always)."""
    if score is None:
        return False
    if previous is None:
        return True
    if selection_metric == "val_loss":
        return score["val_loss"] < previous["val_loss"]
    return (score["val_accuracy"], -score["val_loss"]) > (previous["val_accuracy"], -previous["val_loss"])


def train_model(dataset_path: str | Path, model_name: str, seed: int, settings: TrainSettings,
                checkpoint_path: str | Path, history_path: str | Path, **options) -> dict:
    """One seed: a group of one."""
    return train_group(dataset_path, model_name, [seed], settings, [checkpoint_path], [history_path], **options)[0]


def _pixel_scale(dataset: dict) -> float | None:
    scales = dataset.get("pixel_scale_arcsec")
    return float(np.median(scales)) if scales is not None and len(scales) else None


# --------------------------------------------------------------- Gabor + SVM


def train_gabor_group(dataset_path: str | Path, model_name: str, seeds: Sequence[int], settings: TrainSettings,
                      checkpoint_paths: Sequence[str | Path], history_paths: Sequence[str | Path]) -> list[dict]:
    """Fit the Gabor-feature SVM on the fit part for each seed, with C and gamma chosen on the validation part
    (by ``selection_metric``); the seed drives the Platt-scaling folds."""
    from rgmorph.gabor import GaborSVM, select_svm

    started = time.monotonic()
    dataset = load_dataset(dataset_path)
    fit_index, validation_index = _fit_and_validation(dataset, settings)
    options = dict(settings.model_options)
    grid = {"C": options.pop("C_grid", None), "gamma": options.pop("gamma_grid", None)}
    feature_options = {key: options[key] for key in ("orientations", "wavelengths", "polar_shape") if key in options}
    probe = GaborSVM(**feature_options)
    features = probe.features(dataset["images"][np.concatenate([fit_index, validation_index])])
    fit_features, validation_features = features[:len(fit_index)], features[len(fit_index):]
    fit_labels, validation_labels = dataset["labels"][fit_index], dataset["labels"][validation_index]
    checkpoints = []
    for k, seed in enumerate(seeds):
        choice = select_svm(fit_features, fit_labels, validation_features, validation_labels, seed=int(seed),
                            selection_metric=settings.selection_metric, feature_options=feature_options,
                            **{key: value for key, value in grid.items() if value is not None})
        model = choice["model"]
        train_probabilities = model.predict_proba_features(fit_features)
        train_loss = float(F.nll_loss(torch.log(torch.from_numpy(train_probabilities).clamp_min(1e-12)),
                                      torch.from_numpy(fit_labels)))
        train_accuracy = float(np.mean(train_probabilities.argmax(1) == fit_labels))
        row = {"epoch": 1, "train_loss": train_loss, "train_accuracy": train_accuracy,
               "val_loss": choice["val_loss"], "val_accuracy": choice["val_accuracy"],
               "learning_rate": float("nan"), "seconds": time.monotonic() - started, "best": True}
        checkpoint = {
            "model_name": model_name,
            "model_options": settings.model_options,
            "estimator": model.to_bytes(),
            "state_dict": None,
            "class_names": dataset["class_names"],
            "survey": dataset["survey"],
            "image_size": int(dataset["images"].shape[-1]),
            "seed": int(seed),
            "parameters": model.parameter_count(),
            "trainable_parameters": model.parameter_count(),
            "chosen": {"C": choice["C"], "gamma": choice["gamma"]},
            "best_epoch": 1,
            "best_val_loss": choice["val_loss"],
            "best_val_accuracy": choice["val_accuracy"],
            "validation_names": dataset["names"][validation_index].tolist(),
            "settings": asdict(settings),
            "test_time_augmentation": "none",
            "dataset": str(dataset_path),
            "dataset_sha256": sha256_file(dataset_path),
            "pixel_scale_arcsec": _pixel_scale(dataset),
            "environment": run_environment(torch.device("cpu")),
            "train_seconds": time.monotonic() - started,
            "trained_with_seeds": [int(s) for s in seeds],
            "mode": "scratch",
            "trained_on": dataset["survey"],
            "frozen": [],
        }
        _save_torch_atomic(checkpoint_paths[k], checkpoint)
        write_csv_atomic(history_paths[k], pd.DataFrame([row]))
        log.info("%s %s seed %d: C %s, gamma %s chosen on validation (loss %.4f, accuracy %.3f)", model_name,
                 dataset["survey"], seed, choice["C"], choice["gamma"], choice["val_loss"], choice["val_accuracy"])
        checkpoints.append(checkpoint)
    return checkpoints


# ------------------------------------------------------------------ loading


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint dict). The model maps (N, 1, H, W) images to logits (or, with
    test-time augmentation or for the Gabor SVM, log-probabilities: the same after a softmax)."""
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    if checkpoint.get("estimator") is not None:
        from rgmorph.gabor import GaborSVMModule

        return GaborSVMModule.from_bytes(checkpoint["estimator"]).eval(), checkpoint
    model = models.build(checkpoint["model_name"], in_channels=1, num_classes=len(checkpoint["class_names"]),
                         image_size=checkpoint["image_size"], **checkpoint["model_options"])
    model.load_state_dict(checkpoint["state_dict"])
    if checkpoint.get("test_time_augmentation", "none") == "d4":
        model = D4Average(model)
    return model.to(device).eval(), checkpoint
