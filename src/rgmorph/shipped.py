"""Pretrained models shipped with the project, for ``rgmorph classify`` on a fresh clone.

Each lives in ``resources/models/<name>/``: one ``weights_only`` checkpoint per seed (``seed<k>.pt``, the
training study's file byte for byte), ``card.json`` (what the models expect and what they scored, with each
file's sha256) and ``MODEL_CARD.md`` (the same for a reader). ``resources/models/models.yaml`` says which
study, survey and variant each one is exported from and what the card says about intended use and failure
cases; ``rgmorph models export`` (``make models``) regenerates the folders from the studies' results, so a
re-run study updates its shipped models with one command.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from rgmorph.files import sha256_file, write_json_atomic

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO / "resources" / "models"
REGISTRY = MODELS_DIR / "models.yaml"
CARD = "card.json"


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


class ShippedModelError(ValueError):
    """A shipped model that is missing, unknown or does not match its card; the message says which."""


@dataclass
class ShippedModel:
    folder: Path
    card: dict

    @classmethod
    def load(cls, name_or_folder: str | Path) -> ShippedModel:
        """A shipped model by name (a folder of resources/models) or by its folder's path."""
        folder = Path(name_or_folder)
        if not (folder / CARD).is_file():
            folder = MODELS_DIR / str(name_or_folder)
        if not (folder / CARD).is_file():
            known = ", ".join(model.name for model in available()) or "none"
            raise ShippedModelError(f"no shipped model {name_or_folder!r} (known: {known}; rgmorph models lists them)")
        return cls(folder, read_json(folder / CARD))

    @property
    def name(self) -> str:
        return self.card["name"]

    def checkpoint_paths(self) -> list[str]:
        return [str(self.folder / name) for name in self.card["files"]]

    def problems(self) -> list[str]:
        """Every file of the card that is missing or whose sha256 differs from the card's."""
        found = []
        for name, recorded in self.card["files"].items():
            path = self.folder / name
            if not path.is_file():
                found.append(f"{path}: missing")
            elif sha256_file(path) != recorded:
                found.append(f"{path}: sha256 {sha256_file(path)} differs from the card's {recorded}")
        return found

    def verified(self) -> ShippedModel:
        problems = self.problems()
        if problems:
            raise ShippedModelError(f"shipped model {self.name} does not match its card:\n  " + "\n  ".join(problems))
        return self


def available(models_dir: Path = MODELS_DIR) -> list[ShippedModel]:
    return [ShippedModel(card.parent, read_json(card)) for card in sorted(models_dir.glob(f"*/{CARD}"))]


def registry(path: Path = REGISTRY) -> dict[str, dict]:
    return yaml.safe_load(path.read_text())["models"]


def default_for(survey: str, path: Path = REGISTRY) -> str:
    """The registry's default shipped model for ``survey`` (``default_for`` in models.yaml)."""
    names = [name for name, entry in registry(path).items() if survey in entry.get("default_for", [])]
    if not names:
        raise ShippedModelError(f"no shipped model is the default for survey {survey!r}; give --models NAME "
                                "(rgmorph models lists them) or --study RESULTS_DIR")
    return names[0]


def listing(models: list[ShippedModel]) -> pd.DataFrame:
    """One row per shipped model: what it classifies and how well (for ``rgmorph models``)."""
    rows = []
    for model in models:
        card, accuracy = model.card, model.card["test_metrics"].get("accuracy", {})
        rows.append({"name": model.name, "survey": card["survey"], "variant": card["model"],
                     "classes": "/".join(card["class_names"]), "seeds": len(card["files"]),
                     "image": f"{card['image_size']} px" + (f" at {card['pixel_scale_arcsec']:.2f}\"/px"
                                                             if card["pixel_scale_arcsec"] else ""),
                     "test accuracy": f"{accuracy.get('mean', float('nan')):.3f} +/- {accuracy.get('std', 0):.3f}",
                     "MB": round(sum((model.folder / name).stat().st_size for name in card["files"]) / 1e6, 1)})
    return pd.DataFrame(rows)


def export(name: str, registry_path: Path = REGISTRY, models_dir: Path = MODELS_DIR) -> ShippedModel:
    """resources/models/<name>/ from its study's results (registry entry ``name``), replaced as a whole."""
    from rgmorph import settings
    from rgmorph.shipped_card import build_card, write_model_card

    entry = registry(registry_path)[name]
    config = settings.load([REPO / path for path in entry["configs"]])
    card, checkpoints = build_card(name, entry, config)
    target = models_dir / name
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=models_dir))
    try:
        for file_name, source in checkpoints.items():
            shutil.copyfile(source, staging / file_name)
        write_json_atomic(staging / CARD, card)
        write_model_card(card, staging / "MODEL_CARD.md")
        staging.chmod(0o755)
        _replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ShippedModel.load(target).verified()


def _replace_folder(staging: Path, target: Path) -> None:
    """``target`` becomes ``staging``: the old folder is moved aside first, so a failure leaves one whole."""
    retired = target.with_name(f".{target.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired, ignore_errors=True)
