"""Model registry: one name -> one constructor with a uniform signature (as timm does).

    build(name, in_channels=1, num_classes=2, image_size=150, **options) -> torch.nn.Module

Adding a variant is adding one module with a function decorated by ``@register("name")``
and importing it below.

Variants that are not networks (fitted, not trained by gradient descent: the Gabor-feature SVM)
register with ``@register_estimator("name")`` and the same signature; ``variants()`` lists both
kinds, ``available()`` the networks alone.
"""

from __future__ import annotations

from typing import Callable

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}
_ESTIMATORS: dict[str, Callable] = {}


def register(name: str):
    def decorator(constructor):
        if name in _REGISTRY or name in _ESTIMATORS:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = constructor
        return constructor

    return decorator


def register_estimator(name: str):
    def decorator(constructor):
        if name in _REGISTRY or name in _ESTIMATORS:
            raise ValueError(f"model {name!r} is registered twice")
        _ESTIMATORS[name] = constructor
        return constructor

    return decorator


def available() -> list[str]:
    """The networks (torch modules)."""
    return sorted(_REGISTRY)


def variants() -> list[str]:
    """Every model a config may name: the networks and the fitted estimators."""
    return sorted([*_REGISTRY, *_ESTIMATORS])


def is_estimator(name: str) -> bool:
    return name in _ESTIMATORS


def build_estimator(name: str, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, **options):
    try:
        constructor = _ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}; available: {', '.join(sorted(_ESTIMATORS))}") from None
    return constructor(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)


def build(name: str, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, **options) -> torch.nn.Module:
    try:
        constructor = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}") from None
    return constructor(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)


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


# Importing the variant modules fills the registry.
from rgmorph.models import alexnet, dn_equivariant, lenet, resnet, tang2019, vgg  # noqa: E402,F401
from rgmorph import gabor  # noqa: E402,F401  (registers gabor_svm)
