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


def _default(section: str, key: str):
    """A dataclass field whose default is the schema's <section>.<key> (a fresh copy for each instance)."""
    return field(default_factory=lambda: _copy(schema_defaults(section)[key]))


def _copy(value):
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value


def defaults_from_schema(section: str):
    """A dataclass whose annotated fields without a default in the class body default to the schema's
    ``<section>.<field>``: each name is written once, and the schema alone holds its default."""

    def decorate(cls):
        for name in cls.__dict__.get("__annotations__", {}):
            if name not in cls.__dict__:
                setattr(cls, name, _default(section, name))
        return dataclass(cls)

    return decorate


@defaults_from_schema("train")
class TrainSettings:
    """How one model trains (see the schema's ``train`` section for each key's meaning)."""

    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    optimizer: str
    lr_schedule: str
    label_smoothing: float
    class_balance: str  # 'none', 'loss' or 'sampling'
    weight_averaging: str  # 'none' or 'ema'
    decision: str  # 'argmax' or 'balanced' (rgmorph.decision, applied at evaluation)
    ema_decay: float
    validation: str  # 'holdout' (of the training split) or 'catalogue' (its own split)
    validation_fraction: float
    validation_seed: int
    selection_metric: str
    test_time_augmentation: str  # 'none', 'd4' or 'auto'
    augment: dict = field(default_factory=lambda: dict(schema_defaults("augment")))
    model_options: dict = field(default_factory=dict)
    device: str
    threads: int | None
    batch_norm_statistics: str
    batch_norm_images: int
    precision: str
    cuda_graphs: bool
    strategy: str
    deterministic: bool
    resume: bool
    checkpoint_interval_s: float

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


@dataclass
class SelfSupervisedStart:
    """Start each seed from its own self-supervised pre-trained network (rgmorph.pretrain), one checkpoint per
    seed; the classifier is re-initialised from the seed, the trunk copied and trained on."""

    checkpoints: Sequence[str | Path]
    reinitialise: Sequence[str] = ("classifier",)
