"""D_N group-equivariant CNN in the style of Scaife & Porter 2021 (MNRAS 503, 2369), in pure torch.

Scaife & Porter built their D_N models with e2cnn, which cannot be installed beside numpy 2, so the
group convolutions are written out here on the regular representation of the dihedral group D_N
(N rotations, each with and without a reflection: 2N elements):

* lifting convolution: every filter is applied in all 2N poses, giving one map per field and pose;
* group convolution: filters span (field, pose, space); the filter for output pose g is the base
  filter moved by g (space posed by g, pose axis re-indexed by g^-1 h), so a posed input yields a
  posed output with its pose axis permuted;
* group pooling: max (or mean) over the 2N poses leaves features invariant at every location.

Filter poses: quarter turns use torch.rot90 and the reflection torch.flip, both exact; for order 8
and 16 the intermediate angles rotate the disc-masked filter with a precomputed bilinear
interpolation matrix and then apply rot90, so the D4 subgroup stays exact at every order.

Exact invariance also needs the spatial path to commute with the symmetries of the square image:

* convolutions have odd kernels and no padding (LeNet's), which crops the map symmetrically;
* each 2x down-sampling is a 2x2 max pool on an even map and a 3x3, stride-2, padding-1 max pool
  on an odd map: both tile the map symmetrically, whereas a 2x2 pool on an odd map drops the last
  row and column and so breaks rot90 invariance;
* flattening the map into a fully connected layer, as LeNet does, would only be equivariant, so the
  invariant maps are averaged over concentric rings about the image centre. Distances to the
  centre are preserved exactly by the D4 symmetries and approximately by any rotation, and rings
  keep the radial structure (core-bright FRI against edge-bright FRII) that a global pool would lose.

The head is LeNet's (FC-120, FC-84, dropout, FC-num_classes) on the ring-averaged features.
Cost grows as N^2 (the group convolution has 2N times more input and output channels). ``cn_equivariant``
is the same network on the rotation group C_N alone (N poses): half the channels, no reflection invariance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rgmorph.models.registry import register
from rgmorph.models.lenet import lenet_head


def _centred_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    centre = (size - 1) / 2
    rows, cols = np.mgrid[:size, :size] - centre
    return rows, cols


def _disc_mask(kernel_size: int) -> np.ndarray:
    """The kernel's inscribed disc: the only support that every rotation maps onto itself."""
    rows, cols = _centred_grid(kernel_size)
    return rows**2 + cols**2 <= (kernel_size / 2) ** 2


def _rotation_matrix(kernel_size: int, angle: float) -> np.ndarray:
    """Matrix M such that M @ filter.ravel() is the disc-masked filter rotated by `angle` (radians) by
    bilinear interpolation, in the direction of torch.rot90: angle pi/2 reproduces rot90(k=1)."""
    rows, cols = _centred_grid(kernel_size)
    centre = (kernel_size - 1) / 2
    # each output pixel takes the value at its position rotated back by `angle`
    source_rows = rows * math.cos(angle) + cols * math.sin(angle) + centre
    source_cols = cols * math.cos(angle) - rows * math.sin(angle) + centre
    top, left = np.floor(source_rows).astype(int), np.floor(source_cols).astype(int)
    down, right = source_rows - top, source_cols - left
    output_index = np.arange(kernel_size**2).reshape(kernel_size, kernel_size)
    matrix = np.zeros((kernel_size**2, kernel_size**2))
    for row_step, row_weight in ((0, 1 - down), (1, down)):
        for col_step, col_weight in ((0, 1 - right), (1, right)):
            source_row, source_col = top + row_step, left + col_step
            inside = (source_row >= 0) & (source_row < kernel_size) & (source_col >= 0) & (source_col < kernel_size)
            np.add.at(
                matrix,
                (output_index[inside], source_row[inside] * kernel_size + source_col[inside]),
                (row_weight * col_weight)[inside],
            )
    matrix[~_disc_mask(kernel_size).ravel()] = 0
    return matrix


def _dihedral_index_table(order: int, reflections: bool = True) -> torch.Tensor:
    """table[g, h] = index of g^-1 h in D_N, where index m*N + r is reflection m followed by rotation r
    (in C_N, without reflections, index r)."""

    def compose(first, second):
        (rotation_1, reflection_1), (rotation_2, reflection_2) = first, second
        # a reflection reverses the sense of the rotations applied before it
        return (rotation_1 + (-1) ** reflection_1 * rotation_2) % order, reflection_1 ^ reflection_2

    def inverse(element):
        rotation, reflection = element
        return element if reflection else ((-rotation) % order, 0)

    elements = [(rotation, reflection) for reflection in ((0, 1) if reflections else (0,)) for rotation in range(order)]
    index = {element: position for position, element in enumerate(elements)}
    return torch.tensor([[index[compose(inverse(g), h)] for h in elements] for g in elements])


class DihedralPoses(nn.Module):
    """The 2N poses of square filters: (..., k, k) -> (..., 2N, k, k), pose m*N + r being a flip of the
    last axis when m = 1, then a rotation by r * 360/N degrees (without reflections the N rotations alone:
    C_N). Filters are masked to the inscribed disc."""

    def __init__(self, order: int, kernel_size: int, reflections: bool = True):
        super().__init__()
        self.order, self.reflections = order, reflections
        self.steps_per_quarter_turn = order // 4
        self.register_buffer("disc", torch.from_numpy(_disc_mask(kernel_size)).float(), persistent=False)
        partial_turns = [_rotation_matrix(kernel_size, 2 * math.pi * step / order)
                         for step in range(1, self.steps_per_quarter_turn)]
        self.register_buffer(
            "partial_turns",
            torch.tensor(np.array(partial_turns).reshape(-1, kernel_size**2, kernel_size**2), dtype=torch.float32),
            persistent=False,
        )

    def forward(self, filters: torch.Tensor) -> torch.Tensor:
        filters = filters * self.disc
        poses = []
        for unrotated in (filters, filters.flip(-1)) if self.reflections else (filters,):
            below_quarter_turn = [unrotated] + [
                (unrotated.flatten(-2) @ matrix.T).unflatten(-1, unrotated.shape[-2:]) for matrix in self.partial_turns
            ]
            for step in range(self.order):
                quarter_turns, remainder = divmod(step, self.steps_per_quarter_turn)
                poses.append(torch.rot90(below_quarter_turn[remainder], quarter_turns, dims=(-2, -1)))
        return torch.stack(poses, dim=-3)


class LiftingConv(nn.Module):
    """Planar images to pose-indexed maps: (B, C, H, W) -> (B, fields, 2N, H - k + 1, W - k + 1)."""

    def __init__(self, in_channels: int, fields: int, kernel_size: int, order: int, reflections: bool = True):
        super().__init__()
        self.poses = DihedralPoses(order, kernel_size, reflections)
        self.weight = nn.Parameter(torch.empty(fields, in_channels, kernel_size, kernel_size))
        # one bias per field, shared by its poses, so that permuting poses permutes outputs
        self.bias = nn.Parameter(torch.zeros(fields))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fields, in_channels, kernel_size, _ = self.weight.shape
        bank = self.poses(self.weight).transpose(1, 2)  # (fields, pose, in_channels, k, k)
        group_size = bank.shape[1]
        maps = F.conv2d(images, bank.reshape(fields * group_size, in_channels, kernel_size, kernel_size),
                        self.bias.repeat_interleave(group_size))
        return maps.unflatten(1, (fields, group_size))


class GroupConv(nn.Module):
    """Convolution over space and D_N: (B, in_fields, 2N, H, W) -> (B, fields, 2N, H - k + 1, W - k + 1)."""

    def __init__(self, in_fields: int, fields: int, kernel_size: int, order: int, reflections: bool = True):
        super().__init__()
        self.poses = DihedralPoses(order, kernel_size, reflections)
        group_size = 2 * order if reflections else order
        self.weight = nn.Parameter(torch.empty(fields, in_fields, group_size, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(fields))
        self.register_buffer("inverse_times", _dihedral_index_table(order, reflections), persistent=False)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        fields, in_fields, group_size, kernel_size, _ = self.weight.shape
        posed = self.poses(self.weight)  # (fields, in_fields, input pose h, output pose g, k, k)
        output_pose = torch.arange(group_size, device=posed.device)[:, None]
        # bank[..., g, h, :, :] = posed[..., g^-1 h, g, :, :]
        bank = posed[:, :, self.inverse_times, output_pose].transpose(1, 2)  # (fields, g, in_fields, h, k, k)
        maps = F.conv2d(features.flatten(1, 2),
                        bank.reshape(fields * group_size, in_fields * group_size, kernel_size, kernel_size),
                        self.bias.repeat_interleave(group_size))
        return maps.unflatten(1, (fields, group_size))


def _halve(features: torch.Tensor) -> torch.Tensor:
    """2x max pooling of (B, fields, 2N, S, S) maps that commutes with the D4 symmetries of the map:
    2x2 windows tile an even map; on an odd map, 3x3 windows centred on the even pixels reach both
    borders alike. Either way the output size is ceil(S / 2)."""
    maps = features.flatten(1, 2)
    if maps.shape[-1] % 2 == 0:
        pooled = F.max_pool2d(maps, 2)
    else:
        pooled = F.max_pool2d(maps, 3, stride=2, padding=1)
    return pooled.unflatten(1, features.shape[1:3])


def _ring_weights(size: int, rings: int) -> torch.Tensor:
    """(rings, size*size) weights averaging a size x size map over equal-width rings of its inscribed disc."""
    rows, cols = _centred_grid(size)
    # squared distances are exact and symmetric, so D4 maps every ring onto itself exactly
    ring = np.floor(np.sqrt(rows**2 + cols**2) / (size / 2) * rings).astype(int).ravel()
    inside = ring < rings
    weights = np.zeros((rings, size * size))
    weights[ring[inside], np.flatnonzero(inside)] = 1
    counts = weights.sum(axis=1, keepdims=True)
    if (counts == 0).any():
        raise ValueError(f"{rings} rings are too many for a {size}x{size} final feature map")
    return torch.tensor(weights / counts, dtype=torch.float32)


class DNEquivariantCNN(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, image_size: int = 150, order: int = 4,
                 fields: Sequence[int] = (6, 16), kernel_size: int = 5, group_pool: str = "max",
                 rings: int = 8, dropout: float = 0.5, reflections: bool = True):
        super().__init__()
        if order % 4 or order < 4:
            raise ValueError(f"order must be a positive multiple of 4 (4, 8, 16), not {order}")
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd: an even filter has no centre to rotate about")
        if group_pool not in ("max", "mean"):
            raise ValueError(f"group_pool must be 'max' or 'mean', not {group_pool!r}")
        self.group_pool = group_pool
        self.lift = LiftingConv(in_channels, fields[0], kernel_size, order, reflections)
        self.group_conv = GroupConv(fields[0], fields[1], kernel_size, order, reflections)
        final_size = image_size
        for _ in range(2):  # convolution, then _halve
            final_size = math.ceil((final_size - kernel_size + 1) / 2)
        self.register_buffer("ring_weights", _ring_weights(final_size, rings), persistent=False)
        self.classifier = lenet_head(fields[1] * rings, num_classes, dropout)

    def invariant_maps(self, images: torch.Tensor) -> torch.Tensor:
        """(B, fields, S, S) maps that rotate and flip with the input but are invariant per location."""
        maps = _halve(F.relu(self.lift(images)))
        maps = _halve(F.relu(self.group_conv(maps)))
        return maps.amax(dim=2) if self.group_pool == "max" else maps.mean(dim=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        ring_means = torch.einsum("bcp,rp->bcr", self.invariant_maps(images).flatten(2), self.ring_weights)
        return self.classifier(ring_means)


@register("dn_equivariant")
def dn_equivariant(in_channels: int = 1, num_classes: int = 2, image_size: int = 150, order: int = 4,
                   fields: Sequence[int] = (6, 16), kernel_size: int = 5, group_pool: str = "max",
                   rings: int = 8, dropout: float = 0.5) -> nn.Module:
    return DNEquivariantCNN(in_channels, num_classes, image_size, order, fields, kernel_size, group_pool,
                            rings, dropout)


@register("cn_equivariant")
def cn_equivariant(in_channels: int = 1, num_classes: int = 2, image_size: int = 150, order: int = 4,
                   fields: Sequence[int] = (6, 16), kernel_size: int = 5, group_pool: str = "max",
                   rings: int = 8, dropout: float = 0.5) -> nn.Module:
    """The rotations alone (C_N, N poses per field): half the cost of D_N; invariant to the image's quarter turns
    exactly, to other multiples of 360/N approximately, and not to reflections."""
    return DNEquivariantCNN(in_channels, num_classes, image_size, order, fields, kernel_size, group_pool,
                            rings, dropout, reflections=False)
