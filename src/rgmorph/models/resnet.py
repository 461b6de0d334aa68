"""A ResNet-18-style network (He et al. 2016): basic residual blocks in four stages of [2, 2, 2, 2],
batch normalisation, global average pooling.

One input channel and a base width of 32 channels by default (ResNet-18 has 64), which keeps it
at about a quarter of ResNet-18's 11M parameters. Global average pooling makes it independent of
the image size, so ``image_size`` is accepted only for the uniform registry signature.
"""

from __future__ import annotations

import torch
from torch import nn

from rgmorph.models.registry import TrunkHead, register

_BLOCKS_PER_STAGE = (2, 2, 2, 2)  # ResNet-18


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        if stride == 1 and in_channels == out_channels:
            self.shortcut: nn.Module = nn.Identity()
        else:
            # a 1x1 projection matches the shape when the block downsamples or widens
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.activation = nn.ReLU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.activation(self.residual(features) + self.shortcut(features))


class ResNet(TrunkHead):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        channels = width
        for stage, blocks in enumerate(_BLOCKS_PER_STAGE):
            stage_channels = width * 2**stage
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(channels, stage_channels, stride))
                channels = stage_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


@register("resnet")
def resnet(in_channels: int = 1, num_classes: int = 2, image_size: int = 150, width: int = 32) -> nn.Module:
    return ResNet(in_channels, num_classes, width)
