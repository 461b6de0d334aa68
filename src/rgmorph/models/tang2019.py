"""The 5-convolution CNN of Tang, Scaife & Leahy 2019 (MNRAS 488, 3358), Table 2."""

from __future__ import annotations

from torch import nn

from rgmorph.models.registry import TrunkHead, flattened_size, register


def _conv_block(in_channels: int, out_channels: int, kernel_size: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, kernel_size), nn.ReLU(), nn.BatchNorm2d(out_channels)]


class Tang2019CNN(TrunkHead):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_block(in_channels, 6, 11), nn.MaxPool2d(2),
            *_conv_block(6, 16, 5), nn.MaxPool2d(3),
            *_conv_block(16, 24, 3),
            *_conv_block(24, 24, 3),
            *_conv_block(24, 16, 3), nn.MaxPool2d(5),
        )
        flat = flattened_size(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 256), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(256, 256), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )


@register("tang2019")
def tang2019(in_channels: int = 1, num_classes: int = 2, image_size: int = 150, dropout: float = 0.5) -> nn.Module:
    return Tang2019CNN(in_channels, num_classes, image_size, dropout)
