"""A dataset as a training job reads it (``TrainingData``), and the stratified validation hold-out of
its training part. Both the networks (``rgmorph.train``) and the Gabor + SVM estimator
(``rgmorph.train_gabor``) read their data through here, so neither imports the other for it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rgmorph.dataset import load_dataset
from rgmorph.files import sha256_file
from rgmorph.train_settings import TrainSettings

log = logging.getLogger(__name__)


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


def fit_and_validation(dataset: dict, settings: TrainSettings, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices: ``train.validation`` 'holdout' splits the training split, 'catalogue' fits on
    all of it and selects on the catalogue's own validation split."""
    candidates = np.flatnonzero(dataset["split"] == "train")
    own = np.flatnonzero(dataset["split"] == "validation")
    if settings.validation == "catalogue":
        if not len(own):
            raise ValueError(f"{path}: train.validation is 'catalogue', but no source is in the validation split "
                             "(catalogue split values valid, val or validation); set train.validation: holdout")
        return candidates, own
    if len(own):
        log.info("%s: %d sources of the catalogue's validation split are not used (train.validation: holdout)",
                 path, len(own))
    return validation_split(dataset["labels"], candidates, settings.validation_fraction, settings.validation_seed)


@dataclass
class TrainingData:
    """A dataset as a training job reads it: its arrays, the fit / validation split of its training part."""

    path: Path
    dataset: dict
    sha256: str
    fit_index: np.ndarray
    validation_index: np.ndarray

    @classmethod
    def load(cls, path: str | Path, settings: TrainSettings) -> TrainingData:
        dataset = load_dataset(path)
        fit, validation = fit_and_validation(dataset, settings, path)
        return cls(Path(path), dataset, sha256_file(path), fit, validation)

    @property
    def survey(self) -> str:
        return self.dataset["survey"]

    @property
    def image_size(self) -> int:
        return int(self.dataset["images"].shape[-1])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(fit images (N, 1, H, W), fit labels, validation images, validation labels)."""
        images = torch.from_numpy(self.dataset["images"]).unsqueeze(1)
        labels = torch.from_numpy(self.dataset["labels"])
        return images[self.fit_index], labels[self.fit_index], images[self.validation_index], labels[self.validation_index]

    def record(self) -> dict:
        """What a checkpoint records about the data (see ``build_checkpoint``)."""
        scales = self.dataset.get("pixel_scale_arcsec")
        return {"dataset": str(self.path), "dataset_sha256": self.sha256, "survey": self.survey,
                "class_names": list(self.dataset["class_names"]), "image_size": self.image_size,
                "pixel_scale_arcsec": float(np.median(scales)) if scales is not None and len(scales) else None,
                "validation_names": self.dataset["names"][self.validation_index].tolist()}
