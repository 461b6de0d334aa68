"""Transfer learning between surveys (Tang, Scaife & Leahy 2019): what the config asks for, checked.

A transfer run fine-tunes, seed by seed, the network trained from scratch on the ``from`` survey on
the ``to`` survey's training split, keeping the configured layers frozen, and is evaluated on the
``to`` survey's test split beside the network trained there from scratch (``rgmorph.train``,
``TransferSpec``).

What maps onto what: both surveys' cutouts are 150 x 150 pixels, but FIRST pixels are 1.8 arcsec
(a 4.5 arcmin field) and NVSS pixels 15 arcsec (37.5 arcmin): an NVSS cutout covers 8.3 times the
angle of a FIRST one, and a source spans 8.3 times fewer pixels there. Nothing is resampled, so the
transfer maps pixel onto pixel: NVSS -> FIRST applies filters learnt on compact, few-to-20-pixel
sources to sources 8.3 times larger in pixels, FIRST -> NVSS the reverse. What can carry over is
pixel-level structure (edges, compact blobs, gaps between components), not the same physical
scale. Each transfer checkpoint records both pixel scales (``pixel_scale_arcsec``,
``pretrained_pixel_scale_arcsec``).
"""

from __future__ import annotations


def transfer_problems(transfer: dict) -> list[str]:
    """One line per problem with the config's ``transfer`` section, naming the key.

    Names that are no model, the Gabor SVM (not a network) and a direction from a survey to itself are
    problems. A model that ``train.models`` does not train, or a direction between surveys the config does
    not list, is skipped instead (``transfer_plan``): a config that narrows ``train`` or ``surveys`` on top of
    the paper config (Snakemake merges config files) need not repeat the transfer section.
    """
    from rgmorph import models

    names = list(transfer.get("models", []))
    problems = [f"config key transfer.models: unknown model '{name}'; available: {models.available()}"
                for name in names if name not in models.variants()]
    problems += [f"config key transfer.models: '{name}' is not a network, so it cannot be fine-tuned"
                 for name in names if name in models.variants() and models.is_estimator(name)]
    problems += [f"config key transfer.directions: from and to are both '{direction['from']}'"
                 for direction in transfer.get("directions", []) if direction["from"] == direction["to"]]
    return problems


def transfer_plan(config: dict) -> tuple[list[str], list[tuple[str, str]]]:
    """(models, [(from, to), ...]) of the transfer runs: the transfer models that ``train.models`` trains,
    between surveys that ``surveys`` lists."""
    transfer = config.get("transfer", {})
    trained = config["train"]["models"]
    names = [name for name in transfer.get("models", []) if name in trained]
    directions = [(direction["from"], direction["to"]) for direction in transfer.get("directions", [])
                  if direction["from"] in config["surveys"] and direction["to"] in config["surveys"]
                  and direction["from"] != direction["to"]]
    return (names, directions) if names and directions else ([], [])


def per_model(mapping: dict, model: str) -> list[str]:
    """The list for ``model`` in a {model or 'default': [...]} mapping (freeze, reinitialise)."""
    return list(mapping.get(model, mapping.get("default", [])))

