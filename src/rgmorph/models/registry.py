"""Model registry: one name -> one constructor with a uniform signature (as timm does).

    build(name, in_channels=1, num_classes=2, image_size=150, **options) -> torch.nn.Module

A network variant is a module with a function decorated by ``@register("name")``; it imports this
module, never the reverse, so the registry imports no variant. ``rgmorph.models`` imports the network
modules (torch alone) to fill it.

Variants that are not networks (fitted, not trained by gradient descent: the Gabor-feature SVM) are
named here with the module that implements them, imported only when one is built or trained, so that
importing the registry never imports scikit-learn or scipy. ``variants()`` lists both kinds,
``available()`` the networks alone.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable

import torch

_NETWORKS: dict[str, Callable[..., torch.nn.Module]] = {}
# fitted estimators: name -> module (imported lazily) with build(...) and module_from_state(state)
_ESTIMATORS: dict[str, str] = {"gabor_svm": "rgmorph.models.gabor_svm"}


def register(name: str):
    def decorator(constructor):
        if name in _NETWORKS or name in _ESTIMATORS:
            raise ValueError(f"model {name!r} is registered twice")
        _NETWORKS[name] = constructor
        return constructor

    return decorator


def available() -> list[str]:
    """The networks (torch modules)."""
    return sorted(_NETWORKS)


def variants() -> list[str]:
    """Every model a config may name: the networks and the fitted estimators."""
    return sorted([*_NETWORKS, *_ESTIMATORS])


def is_estimator(name: str) -> bool:
    return name in _ESTIMATORS


def estimator_module(name: str) -> ModuleType:
    """The module implementing the fitted estimator ``name`` (imported now)."""
    try:
        return importlib.import_module(_ESTIMATORS[name])
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}; available: {', '.join(sorted(_ESTIMATORS))}") from None


def build(name: str, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, **options) -> torch.nn.Module:
    try:
        constructor = _NETWORKS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}") from None
    return constructor(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)


class TrunkHead(torch.nn.Module):
    """A network that is ``classifier(features(images))``: transfer learning freezes the ``features`` trunk,
    and a frozen trunk's output for an unaugmented image does not change from epoch to epoch."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


def flattened_size(features: torch.nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features ``features`` yields for one image, probed in eval mode so that the
    probe leaves batch norm's running statistics untouched."""
    was_training = features.training
    features.eval()
    with torch.no_grad():
        size = features(torch.zeros(1, in_channels, image_size, image_size)).numel()
    features.train(was_training)
    return size


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
