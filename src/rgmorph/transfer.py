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

from collections.abc import Sequence


def transfer_problems(transfer: dict, trained_models: Sequence[str], surveys: Sequence[str]) -> list[str]:
    """One line per problem with the config's ``transfer`` section, naming the key."""
    from rgmorph import models

    names = list(transfer.get("models", []))
    if not names:
        return []  # no transfer runs: directions are not used
    problems = [f"config key transfer.models: '{name}' is not in train.models {list(trained_models)}"
                for name in names if name not in trained_models]
    problems += [f"config key transfer.models: '{name}' is not a network, so it cannot be fine-tuned"
                 for name in names if name in models.variants() and models.is_estimator(name)]
    for direction in transfer.get("directions", []):
        source, target = direction["from"], direction["to"]
        problems += [f"config key transfer.directions: '{survey}' is not one of the surveys {list(surveys)}"
                     for survey in (source, target) if survey not in surveys]
        if source == target:
            problems.append(f"config key transfer.directions: from and to are both '{source}'")
    return problems


def per_model(mapping: dict, model: str) -> list[str]:
    """The list for ``model`` in a {model or 'default': [...]} mapping (freeze, reinitialise)."""
    return list(mapping.get(model, mapping.get("default", [])))

