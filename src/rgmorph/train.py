"""Stage 5: train one model on one survey with one seed; keep the checkpoint best on validation.

The whole dataset sits on the device as one tensor and augmentation is batched there, so the
loop has no per-sample Python. A stratified validation part is held out of the training split;
the test split is never read here.
"""

from __future__ import annotations

import io
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import rgmorph
from rgmorph import models
from rgmorph.augment import random_rotate_flip
from rgmorph.io import sha256_file, write_bytes_atomic, write_csv_atomic
from rgmorph.preprocess import load_dataset

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # or 'constant'
    validation_fraction: float = 0.2
    validation_seed: int = 2019
    selection_metric: str = "val_loss"  # or 'val_accuracy'
    augment: dict = field(default_factory=lambda: {"rotate": True, "hflip": True, "vflip": True})
    model_options: dict = field(default_factory=dict)
    device: str = "auto"
    threads: int | None = None


def select_device(preference: str = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        log.warning("device %r requested but CUDA is not available: using the CPU", preference)
        return torch.device("cpu")
    return torch.device(preference)


def make_deterministic(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


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
    model.eval()
    return torch.cat([model(images[start:start + batch_size]) for start in range(0, len(images), batch_size)])


def _loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def train_model(dataset_path: str | Path, model_name: str, seed: int, settings: TrainSettings,
                checkpoint_path: str | Path, history_path: str | Path) -> dict:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    make_deterministic(seed)
    device = select_device(settings.device)
    dataset = load_dataset(dataset_path)
    labels_all = dataset["labels"]
    train_candidates = np.flatnonzero(dataset["split"] == "train")
    fit_index, validation_index = validation_split(labels_all, train_candidates, settings.validation_fraction,
                                                   settings.validation_seed)
    images = torch.from_numpy(dataset["images"]).unsqueeze(1)
    fit_images = images[fit_index].to(device)
    fit_labels = torch.from_numpy(labels_all[fit_index]).to(device)
    validation_images = images[validation_index].to(device)
    validation_labels = torch.from_numpy(labels_all[validation_index]).to(device)

    image_size = images.shape[-1]
    model = models.build(model_name, in_channels=1, num_classes=len(dataset["class_names"]), image_size=image_size,
                         **settings.model_options).to(device)
    parameters = models.count_parameters(model)
    log.info("%s on %s, seed %d: %d trainable parameters; %d fit / %d validation images; device %s",
             model_name, dataset["survey"], seed, parameters, len(fit_index), len(validation_index), device)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    # Cosine decay to zero: late epochs take small steps, so the kept checkpoint is not a lucky spike.
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=settings.epochs)
                 if settings.lr_schedule == "cosine" else None)
    shuffle_generator = torch.Generator(device="cpu").manual_seed(seed)
    augment_generator = torch.Generator(device=device).manual_seed(seed + 1)

    history, best, best_state = [], None, None
    started = time.monotonic()
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(len(fit_index), generator=shuffle_generator).to(device)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            inputs = random_rotate_flip(fit_images[batch], augment_generator, **settings.augment)
            logits = model(inputs)
            loss = F.cross_entropy(logits, fit_labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            loss_sum += loss.item() * len(batch)
            correct += (logits.argmax(1) == fit_labels[batch]).sum().item()
        if scheduler:
            scheduler.step()
        val_loss, val_accuracy = _loss_and_accuracy(predict_logits(model, validation_images), validation_labels)
        row = {"epoch": epoch, "train_loss": loss_sum / len(order), "train_accuracy": correct / len(order),
               "val_loss": val_loss, "val_accuracy": val_accuracy, "seconds": time.monotonic() - started}
        improved = best is None or (
            val_loss < best["val_loss"] if settings.selection_metric == "val_loss"
            else (val_accuracy, -val_loss) > (best["val_accuracy"], -best["val_loss"]))
        if improved:
            best = dict(row)
            best_state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
        history.append({**row, "best": improved})
        log.info("%s %s seed %d: epoch %d/%d train loss %.4f acc %.3f | val loss %.4f acc %.3f%s",
                 model_name, dataset["survey"], seed, epoch, settings.epochs, row["train_loss"], row["train_accuracy"],
                 val_loss, val_accuracy, "  *" if improved else "")

    checkpoint = {
        "model_name": model_name,
        "model_options": settings.model_options,
        "state_dict": best_state,
        "class_names": dataset["class_names"],
        "survey": dataset["survey"],
        "image_size": int(image_size),
        "seed": seed,
        "parameters": parameters,
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "best_val_accuracy": best["val_accuracy"],
        "validation_names": dataset["names"][validation_index].tolist(),
        "settings": asdict(settings),
        "dataset": str(dataset_path),
        "dataset_sha256": sha256_file(dataset_path),
        "environment": run_environment(device),
        "train_seconds": time.monotonic() - started,
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes_atomic(checkpoint_path, buffer.getvalue())
    write_csv_atomic(history_path, pd.DataFrame(history))
    log.info("best epoch %d (val loss %.4f, val accuracy %.3f); %.1f s", best["epoch"], best["val_loss"],
             best["val_accuracy"], checkpoint["train_seconds"])
    return checkpoint


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    model = models.build(checkpoint["model_name"], in_channels=1, num_classes=len(checkpoint["class_names"]),
                         image_size=checkpoint["image_size"], **checkpoint["model_options"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(device).eval(), checkpoint
