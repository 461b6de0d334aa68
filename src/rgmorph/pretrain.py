"""Self-supervised pre-training (SimCLR; Chen et al. 2020) on a pool of unlabelled cutouts, then fine-tuning.

Issue 29 after Slijepcevic et al. 2024: the network's trunk (``features``) learns from every cutout the
mirrors hold, labelled or not, by making two random views of one image (rotation by any angle, flips,
Gaussian noise) agree and views of different images differ (NT-Xent loss on a small projection head). The
study's ``train`` rule then starts each seed from its pre-trained trunk, with a fresh classifier.

No test source may teach the trunk anything: every pool cutout within ``exclude_radius_arcsec`` of a test
source (this study's test split and each ``pretrain.exclude`` catalogue's test rows, e.g. every other study's)
is dropped before pre-training. The pool (name, position, file, sha256) is written beside the checkpoints
and recorded in each, so a reader can check that no test source is in it.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from astropy import units as u
from astropy.coordinates import SkyCoord
from torch import nn

from rgmorph import fast_cpu, models
from rgmorph.augment import random_rotate_flip
from rgmorph.catalogue import parse_angle
from rgmorph.checkpoint import save_torch_atomic
from rgmorph.fetch.common import PermanentFetchError
from rgmorph.fetch.mirror import read_checked_cutout
from rgmorph.files import sha256_bytes
from rgmorph.preprocess import preprocess_image, read_fits_image

log = logging.getLogger(__name__)
POOL_COLUMNS = ["name", "ra", "dec", "file", "sha256"]


@dataclass(frozen=True)
class PretrainSettings:
    epochs: int = 50
    batch_size: int = 128
    learning_rate: float = 1e-3
    temperature: float = 0.5
    noise_std: float = 0.05  # Gaussian noise per pixel of the [0, 1]-normalised view
    projection_size: int = 64
    precision: str = "auto"

    @classmethod
    def from_mapping(cls, mapping: Mapping) -> PretrainSettings:
        return cls(**{key: mapping[key] for key in cls.__dataclass_fields__ if key in mapping})


def mirror_cutouts(mirror_dirs: Sequence[str | Path], skyview_name: str) -> pd.DataFrame:
    """Every cutout of one survey in the mirrors (index.csv), the first mirror's where two hold a position."""
    frames = []
    for folder in map(Path, mirror_dirs):
        index = pd.read_csv(folder / "index.csv")
        index = index[index["survey"] == skyview_name]
        frames.append(pd.DataFrame({"ra": index["ra_deg"], "dec": index["dec_deg"],
                                    "file": [str(folder / name) for name in index["file"]], "sha256": index["sha256"]}))
    cutouts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=POOL_COLUMNS[1:])
    cutouts = cutouts.drop_duplicates(subset=["ra", "dec"]).reset_index(drop=True)
    cutouts.insert(0, "name", [f"J{ra:09.5f}{dec:+09.5f}" for ra, dec in zip(cutouts["ra"], cutouts["dec"])])
    return cutouts


def held_out_positions(study_sources: pd.DataFrame, exclude: Sequence[Mapping]) -> pd.DataFrame:
    """(ra, dec) in degrees of every test source: this study's test split and each exclude entry's selected rows
    ({path, ra, dec, select}: column names, decimal or sexagesimal as a catalogue's, and per column the values
    that mark a test row)."""
    test = study_sources.loc[study_sources["split"] == "test"]  # catalogue/sources.csv, decimal degrees
    frames = [pd.DataFrame({"ra": test["ra_deg"].astype(float), "dec": test["dec_deg"].astype(float)})]
    for entry in exclude:
        frames.append(_catalogue_test_positions(entry))
    return pd.concat(frames, ignore_index=True)


def _catalogue_test_positions(entry: Mapping) -> pd.DataFrame:
    table = pd.read_csv(entry["path"], dtype=str, keep_default_na=False)
    columns = {"ra": entry.get("ra", "ra"), "dec": entry.get("dec", "dec")}
    missing = [column for column in (*columns.values(), *entry["select"]) if column not in table.columns]
    if missing:
        raise KeyError(f"pretrain.exclude {entry['path']}: no column {', '.join(missing)}")
    rows = table
    for column, values in entry["select"].items():  # as catalogue.select reads a column
        rows = rows[rows[column].str.strip().isin([str(value) for value in values])]
    positions = {}
    for kind, column in columns.items():
        try:
            positions[kind] = [parse_angle(value, kind) for value in rows[column]]
        except ValueError as error:
            raise ValueError(f"pretrain.exclude {entry['path']}, column {column}: {error}") from None
    return pd.DataFrame(positions)


def near(positions: pd.DataFrame, others: pd.DataFrame, radius_arcsec: float) -> np.ndarray:
    """True for each row of ``positions`` within ``radius_arcsec`` of any row of ``others``."""
    if positions.empty or others.empty:
        return np.zeros(len(positions), bool)
    mine = SkyCoord(positions["ra"].to_numpy() * u.deg, positions["dec"].to_numpy() * u.deg)
    theirs = SkyCoord(others["ra"].to_numpy() * u.deg, others["dec"].to_numpy() * u.deg)
    _, separation, _ = mine.match_to_catalog_sky(theirs)
    return separation.arcsec <= radius_arcsec


def build_pool(mirror_dirs, skyview_name: str, study_sources: pd.DataFrame, exclude: Sequence[Mapping],
               radius_arcsec: float) -> tuple[pd.DataFrame, int]:
    """The pre-training pool (POOL_COLUMNS) and how many cutouts were dropped as test sources."""
    cutouts = mirror_cutouts(mirror_dirs, skyview_name)
    dropped = near(cutouts, held_out_positions(study_sources, exclude), radius_arcsec)
    if dropped.all():
        raise ValueError(f"pretrain: every one of the {len(cutouts)} {skyview_name!r} cutouts is a test source")
    return cutouts[~dropped].reset_index(drop=True), int(dropped.sum())


def pool_images(pool: pd.DataFrame, preprocess: Mapping) -> np.ndarray:
    """(N, 1, S, S) float32 images, each checked against its sha256 and preprocessed as the study's."""
    images = []
    for row in pool.itertuples():
        try:
            data = read_checked_cutout(Path(row.file), row.sha256)
        except PermanentFetchError as exc:
            raise ValueError(f"pretrain pool: {row.file}: {exc} (its mirror's index.csv)") from None
        images.append(preprocess_image(read_fits_image(io.BytesIO(data)), **preprocess))
    return np.stack(images)[:, None].astype(np.float32)


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's partner among the 2N - 1 other views, by cosine similarity / temperature."""
    views = F.normalize(torch.cat([first, second]).float(), dim=1)
    similarity = views @ views.T / temperature
    similarity.fill_diagonal_(-math.inf)
    count = first.shape[0]
    partners = torch.cat([torch.arange(count, 2 * count), torch.arange(count)])
    return F.cross_entropy(similarity, partners)


def random_view(images: torch.Tensor, generator: torch.Generator, noise_std: float) -> torch.Tensor:
    views = random_rotate_flip(images, generator)
    return views + noise_std * torch.randn(views.shape, generator=generator)


def projection_head(network: nn.Module, image_size: int, projection_size: int) -> nn.Module:
    """An MLP on the flattened trunk output (discarded after pre-training, as in SimCLR)."""
    features = models.flattened_size(network.features, 1, image_size)
    return nn.Sequential(nn.Flatten(), nn.Linear(features, 256), nn.ReLU(), nn.Linear(256, projection_size))


def simclr(model_name: str, model_options: Mapping, num_classes: int, images: np.ndarray, seed: int,
           settings: PretrainSettings) -> tuple[nn.Module, list[dict]]:
    """Pre-train one seed's network on ``images``: the network (trunk trained, classifier as initialised
    from the seed) and one history row per epoch."""
    torch.manual_seed(seed)
    network = models.build(model_name, num_classes=num_classes, image_size=images.shape[-1], **model_options)
    if not isinstance(network, models.TrunkHead):
        raise ValueError(f"pretrain: {model_name} has no features trunk to pre-train (networks: TrunkHead ones)")
    head = projection_head(network, images.shape[-1], settings.projection_size)
    parameters = [*network.features.parameters(), *head.parameters()]
    optimiser = torch.optim.Adam(parameters, lr=settings.learning_rate)
    precision = fast_cpu.resolve_precision(settings.precision, "cpu")
    if precision == "bf16":  # the training path's layers: channels-last and space-to-depth, same state_dict
        fast_cpu.use_fast_layers(network)
    generator = torch.Generator().manual_seed(seed)
    pool = torch.from_numpy(images)
    history = []
    network.train()
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(len(pool), generator=generator)
        losses = []
        for batch in order.split(settings.batch_size):
            if len(batch) < 2:
                continue  # a lone image has no negatives
            with fast_cpu.autocast(precision, "cpu"):
                first = head(network.features(random_view(pool[batch], generator, settings.noise_std)))
                second = head(network.features(random_view(pool[batch], generator, settings.noise_std)))
            loss = nt_xent(first, second, settings.temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "loss": float(np.mean(losses))})
        log.info("pretrain %s seed %d: epoch %d/%d NT-Xent %.4f", model_name, seed, epoch, settings.epochs,
                 history[-1]["loss"])
    return network, history


def pool_record(pool: pd.DataFrame, dropped: int, radius_arcsec: float) -> dict:
    """What a checkpoint says of its pool: every source with its cutout's sha256, and the table's own."""
    table = pool[POOL_COLUMNS].to_csv(index=False).encode()
    return {"count": len(pool), "dropped_test_sources": dropped, "exclude_radius_arcsec": radius_arcsec,
            "table_sha256": sha256_bytes(table), "sources": pool[["name", "ra", "dec", "sha256"]].to_dict("records")}


def write_pretrained(path: str | Path, network: nn.Module, *, model_name: str, model_options: Mapping,
                     class_names: list[str], image_size: int, survey: str, seed: int, pixel_scale_arcsec,
                     settings: PretrainSettings, pool: dict, history: list[dict]) -> None:
    """A checkpoint the train rule fine-tunes from (the fields rgmorph.train checks) plus the pool."""
    save_torch_atomic(path, {
        "model_name": model_name, "model_options": dict(model_options), "class_names": list(class_names),
        "image_size": image_size, "survey": survey, "seed": seed, "pixel_scale_arcsec": pixel_scale_arcsec,
        "state_dict": network.state_dict(), "pretraining": {"method": "simclr", **settings.__dict__, "pool": pool,
                                                            "history": history}})
