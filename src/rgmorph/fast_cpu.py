"""The fast arithmetic path: bf16 autocast where the hardware has it, channels-last convolutions, and
large kernels on one input channel computed space-to-depth.

``precision`` (the config's ``train.precision``): 'fp32' is the plain path, bit for bit what it always
computed; 'bf16' runs forward passes under bfloat16 autocast (weights, optimiser state, losses and
selection scores stay fp32) with the convolution layouts below; 'auto' is 'bf16' where the CPU (AVX512-BF16
or AMX) or the GPU has native bf16, else 'fp32'. ``RGMORPH_NO_BF16=1`` makes 'auto' act as on a CPU without.

Why the layouts: on a CPU a convolution with one input channel and an 11 x 11 kernel (the Tang CNN's
first layer, half of its step) is a GEMM one channel thick; pixel-unshuffling the image by 2 makes it a
4-channel convolution with a 6 x 6 kernel and 4 times the output channels (the kernel is the same weights,
gathered, with zeros where a phase does not reach), which oneDNN runs 2.6x (fp32) to 3.2x (bf16) faster
forward and backward. Channels-last activations let oneDNN's bf16 kernels skip a reorder at every layer.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
# below this many input pixels a convolution runs in fp32: on 2 x 2 maps (ResNet's last stage at 16 pixels)
# oneDNN's bf16 weight gradient read uninitialised memory (values differing run to run, some 1e22); such
# maps are too small for bf16 to save anything
MIN_BF16_PIXELS = 16


@functools.cache
def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic on this CPU (AVX512-BF16 or AMX tiles); False with RGMORPH_NO_BF16=1."""
    if os.environ.get("RGMORPH_NO_BF16", "0") not in ("", "0"):
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'fp32' or 'bf16': what ``precision`` ('auto', 'fp32', 'bf16') runs as on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
    device = torch.device(device)
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast(precision: str, device: torch.device | str):
    """The autocast context of a resolved ``precision`` on ``device`` (disabled for fp32)."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


@functools.cache
def _space_to_depth_index(out_channels: int, in_channels: int, kernel: int, factor: int) -> tuple[torch.Tensor, int]:
    """Index into the flattened kernel (one zero appended) that gathers the space-to-depth kernel
    (out_channels * factor^2, in_channels * factor^2, k', k'), and k'. Output phase (p, q), input phase (u, v)
    and block offset (d, e) read weight (factor d + u - p, factor e + v - q), or zero outside the kernel."""
    reach = (kernel + factor - 2) // factor + 1
    sizes = (out_channels, factor, factor, in_channels, factor, factor, reach, reach)
    o, p, q, c, u, v, d, e = torch.meshgrid(*(torch.arange(n) for n in sizes), indexing="ij")
    row, col = factor * d + u - p, factor * e + v - q
    inside = (row >= 0) & (row < kernel) & (col >= 0) & (col < kernel)
    flat = ((o * in_channels + c) * kernel + row.clamp(0, kernel - 1)) * kernel + col.clamp(0, kernel - 1)
    index = torch.where(inside, flat, torch.full_like(flat, out_channels * in_channels * kernel * kernel))
    return index.reshape(out_channels * factor**2, in_channels * factor**2, reach, reach), reach


def space_to_depth_conv2d(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          factor: int = 2) -> torch.Tensor:
    """``F.conv2d(images, weight, bias)`` (stride 1, no padding) computed on the ``factor``-unshuffled image:
    the same sums in another order (fp32: within rounding of the direct convolution). Returns NCHW maps."""
    phases, height, width = space_to_depth_phases(images, weight, bias, factor)
    batch, out_channels, _, _, blocks_h, blocks_w = phases.shape
    # channel (o, p, q) at block (a, b) is output pixel (factor a + p, factor b + q): back to NCHW, one copy
    maps = phases.permute(0, 1, 4, 2, 5, 3).reshape(batch, out_channels, factor * blocks_h, factor * blocks_w)
    return maps[..., :height, :width]


def space_to_depth_phases(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          factor: int = 2) -> tuple[torch.Tensor, int, int]:
    """(phases, height, width): the convolution of ``space_to_depth_conv2d`` before its copy back to NCHW,
    as a (N, out_channels, factor, factor, blocks_h, blocks_w) view in which output pixel (factor a + p,
    factor b + q) is [:, :, p, q, a, b], and the output's height and width (blocks past them are padding)."""
    out_channels, in_channels, kernel, _ = weight.shape
    index, reach = _space_to_depth_index(out_channels, in_channels, kernel, factor)
    height, width = images.shape[-2] - kernel + 1, images.shape[-1] - kernel + 1
    blocks_h, blocks_w = -(-height // factor), -(-width // factor)
    rows, cols = blocks_h + reach - 1, blocks_w + reach - 1
    images = F.pad(images, (0, max(0, factor * cols - images.shape[-1]), 0, max(0, factor * rows - images.shape[-2])))
    batch = images.shape[0]
    unshuffled = F.pixel_unshuffle(images[..., :factor * rows, :factor * cols].contiguous(), factor)
    unshuffled = unshuffled.contiguous(memory_format=torch.channels_last)  # oneDNN's bf16 kernels want it
    gathered = torch.cat([weight.reshape(-1), weight.new_zeros(1)])[index.to(weight.device)]
    maps = F.conv2d(unshuffled, gathered, None if bias is None else bias.repeat_interleave(factor**2))
    return maps.reshape(batch, out_channels, factor, factor, blocks_h, blocks_w), height, width


def inference_precision(trained: str, device: torch.device | str) -> str:
    """How to score a network trained in ``trained`` precision: bf16 where it trained so and ``device`` has
    native bf16 (the arithmetic its validation selection saw), else fp32."""
    return "bf16" if trained == "bf16" and resolve_precision("auto", device) == "bf16" else "fp32"


class Bf16Inference(nn.Module):
    """Eval-mode scoring of ``model`` under bf16 autocast with the fast layers; fp32 outputs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = use_fast_layers(model)
        for child in self.model.modules():
            if type(child) is nn.Sequential:
                child.__class__ = PhasePooledSequential

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        with autocast("bf16", images.device):
            return self.model(images).float()


class ChannelsLastConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state_dict) whose input runs channels-last."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] * images.shape[-2] < MIN_BF16_PIXELS:
            with torch.autocast(images.device.type, enabled=False):
                return super().forward(images.float())
        return super().forward(images.contiguous(memory_format=torch.channels_last))


class SpaceToDepthConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same parameters and state_dict) computed by ``space_to_depth_conv2d``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return space_to_depth_conv2d(images, self.weight, self.bias)


class PhasePooledSequential(nn.Sequential):
    """An ``nn.Sequential`` (same modules and state_dict) that, in eval mode, computes each run of a
    space-to-depth convolution, monotone per-channel layers (ReLU, eval-mode batch norm) and a max-pool whose
    window is the space-to-depth factor as: the maximum over the phases, then the monotone layers. Max-pooling
    commutes with a non-decreasing map (and turns into a minimum under a decreasing one), rounding included,
    so the values are the unfused run's; it skips the copy back to NCHW and runs ReLU and batch norm on a
    quarter of the pixels. In training mode (batch statistics) it is the plain ``nn.Sequential``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        layers, start = list(self), 0
        while start < len(layers):
            end = _phase_pooled_run_end(layers, start) if not self.training else None
            if end is None:
                images, start = layers[start](images), start + 1
            else:
                images, start = _phase_pooled(images, layers[start], layers[start + 1:end - 1]), end
        return images


def _phase_pooled_run_end(layers: list[nn.Module], start: int) -> int | None:
    """End (exclusive) of a fusable run [space-to-depth conv, ReLU/BatchNorm2d..., MaxPool2d(2)] at ``start``."""
    if type(layers[start]) is not SpaceToDepthConv2d:
        return None
    end = start + 1
    while end < len(layers) and (type(layers[end]) is nn.ReLU or _uses_running_statistics(layers[end])):
        end += 1
    pool = layers[end] if end < len(layers) else None
    factor = 2  # space_to_depth_conv2d's
    fusable = (type(pool) is nn.MaxPool2d and pool.kernel_size in (factor, (factor, factor))
               and pool.stride in (factor, (factor, factor)) and pool.padding in (0, (0, 0))
               and pool.dilation in (1, (1, 1)) and not pool.ceil_mode)
    return end + 1 if fusable else None


def _uses_running_statistics(layer: nn.Module) -> bool:
    """A batch norm that is a fixed per-channel affine map (eval mode with running statistics), so monotone."""
    return type(layer) is nn.BatchNorm2d and not layer.training and layer.running_mean is not None


def _phase_pooled(images: torch.Tensor, conv: nn.Conv2d, monotone: list[nn.Module]) -> torch.Tensor:
    phases, height, width = space_to_depth_phases(images, conv.weight, conv.bias)
    batch, channels, factor, _, _, _ = phases.shape
    phases = phases[..., :height // factor, :width // factor].reshape(batch, channels, factor * factor,
                                                                          height // factor, width // factor)
    increasing = torch.ones(channels, dtype=torch.bool, device=phases.device)
    for layer in monotone:
        if isinstance(layer, nn.BatchNorm2d) and layer.weight is not None:
            increasing = increasing == (layer.weight >= 0)
    pooled = phases.amax(dim=2)
    if not increasing.all():
        pooled = torch.where(increasing[:, None, None], pooled, phases.amin(dim=2))
    for layer in monotone:
        pooled = layer(pooled)
    return pooled


class Fp32Linear(nn.Linear):
    """An ``nn.Linear`` (same parameters and state_dict) kept in fp32 under autocast: at training batch sizes its
    weight dominates, and casting it to bf16 at every call (AlexNet's 4096 x 4096: 64 MB read, 32 MB fresh
    memory written) costs more than the bf16 product saves."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        with torch.autocast(features.device.type, enabled=False):
            return F.linear(features.float(), self.weight, self.bias)


def gains_from_space_to_depth(conv: nn.Conv2d) -> bool:
    """Where it was measured faster (scripts/benchmark_training.py --layers): one input channel, a kernel of
    5 or more, stride 1, no padding or dilation or groups (Tang's and LeNet's first layers; not AlexNet's
    stride-4 or ResNet's stride-2 stems, nor 3 x 3 kernels)."""
    return (conv.in_channels == 1 and conv.kernel_size[0] == conv.kernel_size[1] >= 5 and conv.stride == (1, 1)
            and conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def use_fast_layers(module: nn.Module) -> nn.Module:
    """Swap every ``nn.Conv2d`` of ``module`` in place for its channels-last or space-to-depth twin and every
    ``nn.Linear`` for its fp32 twin (the same parameters, so state_dicts and functional_call are unchanged);
    returns ``module``."""
    for child in module.modules():
        if type(child) is nn.Conv2d:
            child.__class__ = SpaceToDepthConv2d if gains_from_space_to_depth(child) else ChannelsLastConv2d
        elif type(child) is nn.Linear:
            child.__class__ = Fp32Linear
    return module
