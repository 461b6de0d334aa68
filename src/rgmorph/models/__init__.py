"""Model registry: one name -> one constructor with a uniform signature (as timm does).

    build(name, in_channels=1, num_classes=2, image_size=150, **options) -> torch.nn.Module

Adding a variant is adding one module with a function decorated by ``@register("name")``
and importing it below.
"""

from __future__ import annotations

from typing import Callable

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}


def register(name: str):
    def decorator(constructor):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = constructor
        return constructor

    return decorator


def available() -> list[str]:
    return sorted(_REGISTRY)


def build(name: str, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, **options) -> torch.nn.Module:
    try:
        constructor = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(available())}") from None
    return constructor(in_channels=in_channels, num_classes=num_classes, image_size=image_size, **options)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Importing the variant modules fills the registry.
from rgmorph.models import alexnet, dn_equivariant, lenet, resnet, tang2019, vgg  # noqa: E402,F401
