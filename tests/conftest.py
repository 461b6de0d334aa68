"""Shared paths and small real-data fixtures (the bundled quick-start sample)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rgmorph.catalogue import CatalogueSpec, read_catalogue

REPO = Path(__file__).resolve().parents[1]
QUICKSTART_CATALOGUE = REPO / "resources" / "quickstart" / "catalogue.csv"
QUICKSTART_MIRROR = REPO / "resources" / "quickstart" / "skyview-mirror"
FULL_CATALOGUE = REPO / "resources" / "catalogues" / "frdeep_v2.csv"
SHARED_MIRROR = REPO.parent / "shared" / "skyview-mirror"
CLASS_NAMES = ["FRI", "FRII"]


@pytest.fixture(scope="session")
def quickstart_sources() -> pd.DataFrame:
    return read_catalogue(QUICKSTART_CATALOGUE, CatalogueSpec(class_names=CLASS_NAMES))


@pytest.fixture(scope="session")
def mirror_index() -> pd.DataFrame:
    return pd.read_csv(QUICKSTART_MIRROR / "index.csv")


def balanced_subset(sources: pd.DataFrame, per_class_and_split: int) -> pd.DataFrame:
    """The first few sources of each (class, split): small, but every stage sees both classes."""
    return (sources.groupby(["class_name", "split"], sort=True).head(per_class_and_split)
            .reset_index(drop=True))


def write_synthetic_dataset(path: Path, per_class: int = 24, size: int = 96, seed: int = 0,
                            survey: str = "SYNTH") -> Path:
    """A dataset file in the pipeline's format with an easy FRI/FRII contrast.

    FRI: one bright core with diffuse emission; FRII: two compact lobes far from the centre
    (edge-brightened, Fanaroff & Riley 1974). Random orientation, so augmentation is harmless.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    images, labels = [], []
    for label in (0, 1):
        for _ in range(per_class):
            angle = rng.uniform(0, np.pi)
            u = x * np.cos(angle) + y * np.sin(angle)
            v = -x * np.sin(angle) + y * np.cos(angle)
            if label == 0:
                image = np.exp(-(u**2 / 60 + v**2 / 20)) + 0.3 * np.exp(-(u**2 / 400 + v**2 / 40))
            else:
                offset = rng.uniform(0.25, 0.4) * size
                image = np.exp(-((u - offset) ** 2 + v**2) / 12) + np.exp(-((u + offset) ** 2 + v**2) / 12)
            image = image + rng.normal(0, 0.02, image.shape)
            images.append(np.clip(image / image.max(), 0, 1).astype(np.float32))
            labels.append(label)
    labels = np.array(labels)
    count = len(labels)
    split = np.array(["train"] * count, dtype=object)
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        split[members[: per_class // 4]] = "test"
    np.savez_compressed(
        path, images=np.stack(images), labels=labels.astype(np.int64),
        names=np.array([f"SYN {k:03d}" for k in range(count)]), split=split.astype(str),
        sha256=np.array(["0" * 64] * count), class_names=np.array(CLASS_NAMES),
        pixel_scale_arcsec=np.full(count, 1.8), survey=np.array(survey),
    )
    return path
