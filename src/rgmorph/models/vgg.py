"""A VGG-style network (Simonyan & Zisserman 2015): stacks of 3x3 convolutions with batch
normalisation, 2x2 max pooling between stages, two hidden fully connected layers.

Narrow (16-32-64-128 channels by default) so that it trains on a CPU at 150x150.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from rgmorph.models.registry import TrunkHead, flattened_size, register


def _stage(in_channels: int, out_channels: int, convs: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for index in range(convs):
        layers += [
            # no bias: batch norm's shift replaces it
            nn.Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        ]
    return layers + [nn.MaxPool2d(2)]


class VGG(TrunkHead):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size: int = 150,
                 widths: Sequence[int] = (16, 32, 64, 128), convs_per_stage: int = 2,
                 hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        stages: list[nn.Module] = []
        for stage_in, stage_out in zip([in_channels, *widths[:-1]], widths):
            stages += _stage(stage_in, stage_out, convs_per_stage)
        self.features = nn.Sequential(*stages)
        flat = flattened_size(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


@register("vgg")
def vgg(in_channels: int = 1, num_classes: int = 2, image_size: int = 150,
        widths: Sequence[int] = (16, 32, 64, 128), convs_per_stage: int = 2,
        hidden: int = 256, dropout: float = 0.5) -> nn.Module:
    return VGG(in_channels, num_classes, image_size, widths, convs_per_stage, hidden, dropout)
