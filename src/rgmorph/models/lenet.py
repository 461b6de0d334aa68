"""The LeNet baseline of Scaife & Porter 2021 (MNRAS 503, 2369), Section 3.1."""

from __future__ import annotations

from torch import nn

from rgmorph.models.registry import TrunkHead, flattened_size, register


def lenet_head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """FC-120, FC-84, dropout, FC-num_classes: shared with the D_N models, which differ only in the convolutions."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(84, num_classes),
    )


class LeNet(TrunkHead):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = flattened_size(self.features, in_channels, image_size)
        self.classifier = lenet_head(flat, num_classes, dropout)


@register("lenet")
def lenet(in_channels: int = 1, num_classes: int = 2, image_size: int = 150, dropout: float = 0.5) -> nn.Module:
    return LeNet(in_channels, num_classes, image_size, dropout)
