"""Training settings: the config's ``train`` section for one model, with its defaults taken from the
config schema (``workflow/schemas/config.schema.yaml``), which alone holds them.

``augment`` defaults to the schema's ``augment`` section; ``model_options`` (this model's constructor
options) to none.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from rgmorph.settings import SCHEMA


@functools.cache
def schema_defaults(section: str) -> dict:
    """{key: default} of the schema's top-level ``section`` (read once)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    properties = schema["properties"][section]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


def _default(key: str):
    """A dataclass field whose default is the schema's train.<key> (a fresh copy for each instance)."""
    return field(default_factory=lambda: _copy(schema_defaults("train")[key]))


def _copy(value):
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


@dataclass
class TrainSettings:
    """How one model trains (see the schema's ``train`` section for each key's meaning)."""

    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    learning_rate: float = _default("learning_rate")
    weight_decay: float = _default("weight_decay")
    optimizer: str = _default("optimizer")
    lr_schedule: str = _default("lr_schedule")
    label_smoothing: float = _default("label_smoothing")
    class_balance: str = _default("class_balance")  # 'none', 'loss' or 'sampling'
    validation_fraction: float = _default("validation_fraction")
    validation_seed: int = _default("validation_seed")
    selection_metric: str = _default("selection_metric")
    test_time_augmentation: str = _default("test_time_augmentation")  # 'none', 'd4' or 'auto'
    augment: dict = field(default_factory=lambda: dict(schema_defaults("augment")))
    model_options: dict = field(default_factory=dict)
    device: str = _default("device")
    threads: int | None = _default("threads")
    batch_norm_statistics: str = _default("batch_norm_statistics")
    batch_norm_images: int = _default("batch_norm_images")
    precision: str = _default("precision")
    cuda_graphs: bool = _default("cuda_graphs")
    strategy: str = _default("strategy")
    deterministic: bool = _default("deterministic")
    resume: bool = _default("resume")
    checkpoint_interval_s: float = _default("checkpoint_interval_s")

    @classmethod
    def from_mapping(cls, values: dict) -> TrainSettings:
        """Settings from a config mapping; missing keys take the schema's defaults, keys that are not
        settings (models, seeds, ...) are ignored."""
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
