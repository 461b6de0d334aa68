"""AlexNet as adapted to 1x150x150 radio images by Aniyan & Thorat 2017 (ApJS 230, 20).

Normalisation: batch normalisation by default, where AlexNet had local response normalisation
(after the first two convolutions). LRN was dropped from later architectures because it adds
little, and with batch normalisation this 37M-parameter network trains from scratch on a few
hundred images with the same optimiser settings as the other models. ``norm="lrn"`` restores the
original layer (size 5, alpha 1e-4, beta 0.75, k 2). Pooling uses ceil mode, the Caffe convention
of the original AlexNet, which also keeps inputs down to 64x64 valid.
"""

from __future__ import annotations

from torch import nn

from rgmorph.models.registry import TrunkHead, flattened_size, register


def _normalisation(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "lrn":
        return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
    raise ValueError(f"norm must be 'batch' or 'lrn', not {norm!r}")


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(3, stride=2, ceil_mode=True)


class AlexNet(TrunkHead):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size: int = 150,
                 dropout: float = 0.5, norm: str = "batch"):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(), _normalisation(norm, 96), _pool(),
            nn.Conv2d(96, 256, 5, padding=2), nn.ReLU(), _normalisation(norm, 256), _pool(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), _pool(),
        )
        flat = flattened_size(self.features, in_channels, image_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )


@register("alexnet")
def alexnet(in_channels: int = 1, num_classes: int = 2, image_size: int = 150,
            dropout: float = 0.5, norm: str = "batch") -> nn.Module:
    return AlexNet(in_channels, num_classes, image_size, dropout, norm)
