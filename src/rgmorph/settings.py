"""A study's settings, as the rules and the package both read them.

A study is one config file (``config/<study>.yaml``), validated against
``workflow/schemas/config.schema.yaml``, which alone holds the defaults. Overlays (e.g.
``config/published.yaml``) are merged on top in the order given, as ``--configfile A B`` does.

Transfer learning (Tang, Scaife & Leahy 2019): a transfer run fine-tunes, seed by seed, the network
trained from scratch on the ``from`` survey on the ``to`` survey's training split, keeping the
configured layers frozen. Nothing is resampled: at 150 pixels an NVSS cutout (15"/px) covers 8.3
times the angle of a FIRST one (1.8"/px), so the filters learnt on one pixel grid meet sources 8.3
times larger or smaller in pixels on the other; what can carry over is pixel-level structure, not
the same physical scale. Each transfer checkpoint records both pixel scales.

Transfer modes (``transfer.modes``; rgmorph.layout.TRANSFER_MODES) separate what the pre-trained weights
are worth from what fine-tuning is: 'frozen' (the paper's), 'finetune' (every layer trained from the
pre-trained weights) and 'random_frozen' (the frozen layers re-initialised from the seed, a control).
Every mode has the same epochs, learning rate, selection and seeds, so the runs pair seed by seed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from rgmorph.layout import DEFAULT_MODE, Run

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
# train.* keys that say what to train, not how
_NOT_TRAINING_SETTINGS = ("models", "seeds", "model_options", "per_model", "threads")
# transfer.* keys that say what to fine-tune, not how
_NOT_TRANSFER_SETTINGS = ("models", "directions", "modes", "freeze", "reinitialise", "batch_norm", "per_model")


def load(paths, overrides: dict | None = None) -> dict:
    """The study of config files ``paths`` (merged in order) and ``overrides``, with the schema's defaults."""
    from snakemake.utils import update_config, validate

    config: dict = {}
    for path in paths:
        update_config(config, yaml.safe_load(Path(path).read_text()) or {})
    update_config(config, overrides or {})
    validate(config, str(SCHEMA), set_default=True)
    return config


def model_settings(config: dict, model: str) -> dict:
    """One model's training settings: train.* with train.per_model[model] on top, plus the augmentation
    and the model's constructor options."""
    train = config["train"]
    settings = {key: value for key, value in train.items() if key not in _NOT_TRAINING_SETTINGS}
    settings.update(train["per_model"].get(model, {}))
    settings["augment"] = config["augment"]
    settings["model_options"] = train["model_options"].get(model, {})
    return settings


def transfer_settings(config: dict, model: str) -> dict:
    """One model's fine-tuning settings: its training settings with transfer.* and transfer.per_model[model]
    on top."""
    transfer = config["transfer"]
    settings = model_settings(config, model)
    settings.update({key: value for key, value in transfer.items() if key not in _NOT_TRANSFER_SETTINGS})
    settings.update(transfer["per_model"].get(model, {}))
    return settings


def per_model(mapping: dict, model: str) -> list[str]:
    """The list for ``model`` in a {model or 'default': [...]} mapping (transfer.freeze, transfer.reinitialise)."""
    return list(mapping.get(model, mapping.get("default", [])))


def mode_layers(config: dict, model: str, mode: str) -> tuple[list[str], list[str]]:
    """(frozen, reinitialised) module prefixes of ``model`` fine-tuned in transfer ``mode``."""
    transfer = config["transfer"]
    freeze, reinitialise = per_model(transfer["freeze"], model), per_model(transfer["reinitialise"], model)
    if mode == "finetune":
        return [], reinitialise
    if mode == "random_frozen":  # the same layers frozen, at the seed's fresh init instead of pre-trained
        return freeze, list(dict.fromkeys(reinitialise + freeze))
    return freeze, reinitialise


def transfer_modes(config: dict) -> list[str]:
    return list(config["transfer"].get("modes", [DEFAULT_MODE]))


def transfer_plan(config: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """(models, [(from, to), ...]) of the transfer runs: the transfer models that train.models trains,
    between surveys the study lists. A study with one survey has none."""
    transfer = config["transfer"]
    names = [name for name in transfer["models"] if name in config["train"]["models"]]
    directions = [(d["from"], d["to"]) for d in transfer["directions"]
                  if d["from"] in config["surveys"] and d["to"] in config["surveys"] and d["from"] != d["to"]]
    return (names, directions) if names and directions else ([], [])


def scratch_runs(config: dict) -> list[Run]:
    return [Run(survey, model, seed) for survey in config["surveys"] for model in config["train"]["models"]
            for seed in config["train"]["seeds"]]


def transfer_runs(config: dict) -> list[Run]:
    names, directions = transfer_plan(config)
    return [Run(target, model, seed, source, mode) for model in names for source, target in directions
            for mode in transfer_modes(config) for seed in config["train"]["seeds"]]


def all_runs(config: dict) -> list[Run]:
    return scratch_runs(config) + transfer_runs(config)
