"""Checkpoints: one builder for every model (networks and the Gabor SVM), safe saving and loading.

A checkpoint holds tensors and plain data only (str, numbers, bools, None, lists, tuples, dicts), so it
is read with ``torch.load(..., weights_only=True)``, which runs no code from the file: a file that needs
more (an old checkpoint holding a pickled scikit-learn model, or a crafted one) is refused.

The file is the same bytes for the same inputs, settings and seed on one platform: what differs from run
to run (wall-clock seconds, the host) goes to a sidecar JSON beside it (``checkpoint.pt`` ->
``checkpoint.run.json``), which ``load_checkpoint`` merges back into the dict it returns.
"""

from __future__ import annotations

import io
import json
import pickle
import platform
from pathlib import Path

import numpy as np
import torch

import rgmorph
from rgmorph import fast_cpu, models
from rgmorph.files import checked_read, write_bytes_atomic, write_json_atomic

RUN_INFO_SUFFIX = ".run.json"


class UnsafeCheckpointError(ValueError):
    """A file that ``torch.load(..., weights_only=True)`` refuses."""


def run_info_path(path: str | Path) -> Path:
    """The sidecar of a checkpoint: timings and host (``checkpoint.pt`` -> ``checkpoint.run.json``)."""
    path = Path(path)
    return path.with_name(path.stem + RUN_INFO_SUFFIX)


def run_environment(device: torch.device) -> dict:
    return {
        "rgmorph": rgmorph.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
    }


def build_checkpoint(*, model_name: str, settings: dict, data: dict, seed: int, seeds: list[int], best: dict,
                     parameters: int, trainable_parameters: int, origin: dict, state_dict: dict | None = None,
                     estimator_state: dict | None = None, test_time_augmentation: str = "none",
                     precision: str = "fp32", **extra) -> dict:
    """The checkpoint of one seed. ``data``: what the training data was (``dataset``, ``dataset_sha256``,
    ``survey``, ``class_names``, ``image_size``, ``pixel_scale_arcsec``, ``validation_names``); ``best``: the
    kept state's ``epoch``, ``val_loss`` and ``val_accuracy``; ``origin``: ``kind`` ('scratch' or 'transfer'),
    ``trained_on``, ``frozen`` and, for transfer, the pre-trained checkpoint; ``state_dict`` for a network,
    ``estimator_state`` (tensors and plain data) for a fitted estimator; ``extra``: model-specific records."""
    return {
        "model_name": model_name,
        "model_options": settings["model_options"],
        "state_dict": state_dict,
        "estimator_state": estimator_state,
        "class_names": list(data["class_names"]),
        "survey": data["survey"],
        "image_size": int(data["image_size"]),
        "seed": int(seed),
        "parameters": int(parameters),
        "trainable_parameters": int(trainable_parameters),
        "best_epoch": int(best["epoch"]),
        "best_val_loss": float(best["val_loss"]),
        "best_val_accuracy": float(best["val_accuracy"]),
        "validation_names": list(data["validation_names"]),
        "settings": settings,
        "test_time_augmentation": test_time_augmentation,
        "precision": precision,  # what the training steps and validation selection ran in: 'fp32' or 'bf16'
        "dataset": str(data["dataset"]),
        "dataset_sha256": data["dataset_sha256"],
        "pixel_scale_arcsec": data["pixel_scale_arcsec"],
        "trained_with_seeds": [int(s) for s in seeds],
        **origin,
        **extra,
    }


def save_torch_atomic(path: str | Path, payload) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def save_checkpoint(path: str | Path, checkpoint: dict, run_info: dict) -> dict:
    """Write ``checkpoint`` (atomically) and its sidecar ``run_info`` (timings, environment); returns the two
    merged, as ``load_checkpoint`` returns them."""
    save_torch_atomic(path, checkpoint)
    write_json_atomic(run_info_path(path), run_info)
    return {**checkpoint, **run_info}


def training_rule(path: str | Path) -> str:
    """The rule that writes the checkpoint at ``path``, by its folder (rgmorph.layout's run paths)."""
    folders = Path(path).parts
    transfer = [folder for folder in folders if folder.startswith("transfer-from-")]
    if not transfer:
        return "train"
    return "train_transfer_mode" if transfer[-1].endswith(("-finetune", "-random_frozen")) else "train_transfer"


def load_safely(path: str | Path, map_location: torch.device | str = "cpu"):
    """``torch.load`` of tensors and plain data only; anything else is refused, naming the file."""
    try:
        with checked_read(path, remade_by=training_rule(path)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnsafeCheckpointError(
            f"{path} is refused: it holds more than tensors and plain data ({reason}), so loading it could run "
            "code. It was written by an older rgmorph (or by someone else): retrain it (remove it and rerun "
            "the train rule); converting it would mean trusting and unpickling it with the old rgmorph.") from None


def read_checkpoint(path: str | Path, map_location: torch.device | str = "cpu") -> dict:
    """The checkpoint dict of ``path`` (safely loaded) with its sidecar's timings and environment, if any."""
    checkpoint = load_safely(path, map_location)
    sidecar = run_info_path(path)
    if sidecar.is_file():
        checkpoint.update(json.loads(sidecar.read_text()))
    return checkpoint


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, checkpoint dict with the sidecar's ``environment`` and timings). The model maps
    (N, 1, H, W) images to logits (or, with test-time augmentation or for the Gabor SVM, log-probabilities:
    the same after a softmax)."""
    checkpoint = read_checkpoint(path, device)
    name = checkpoint["model_name"]
    if models.is_estimator(name):
        if checkpoint.get("estimator_state") is None:
            raise UnsafeCheckpointError(f"{path} is a {name} checkpoint of an older format (a pickled model); "
                                        "retrain it (remove it and rerun the train rule)")
        return models.estimator_module(name).module_from_state(checkpoint["estimator_state"]).eval(), checkpoint
    model = models.build(name, in_channels=1, num_classes=len(checkpoint["class_names"]),
                         image_size=checkpoint["image_size"], **checkpoint["model_options"])
    model.load_state_dict(checkpoint["state_dict"])
    if fast_cpu.inference_precision(checkpoint.get("precision", "fp32"), device) == "bf16":
        model = fast_cpu.Bf16Inference(model)
    if checkpoint.get("test_time_augmentation", "none") == "d4":
        from rgmorph.batched import D4Average

        model = D4Average(model)
    return model.to(device).eval(), checkpoint
