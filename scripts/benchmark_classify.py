"""Throughput of the classify step alone (preprocessed images -> probabilities, energy) on the CPU.

Cases: 1 seed, 5 seeds, 5 seeds each with the 8-view D4 average, per ``--precision`` (fp32: today's path;
auto: bf16 with the fast layers where the CPU has it, as a bf16-trained checkpoint is scored). Prints
sources/s, the achieved FLOP/s
(2 x the multiply-adds of Conv2d/Linear layers, counted with forward hooks on one image) and, for
scale, the FLOP/s of a 2048x2048 fp32 matrix product on the same threads.

    .venv/bin/python scripts/benchmark_classify.py                       # random-weight models, random images
    .venv/bin/python scripts/benchmark_classify.py --checkpoints results/mirabest/models/FIRST/tang2019/seed*/checkpoint.pt \\
        --dataset results/mirabest/classify/shards/0/images.npz

Each case runs for about --seconds seconds (after one warm-up batch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rgmorph import fast_cpu, models
from rgmorph.batched import D4Average
from rgmorph.classify import score


def multiply_adds(model: torch.nn.Module, image_size: int) -> int:
    """Multiply-adds of the Conv2d and Linear layers for one (1, 1, H, W) image (forward hooks)."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    def linear(module, inputs, output):
        nonlocal total
        total += output.numel() // module.out_features * module.in_features * module.out_features

    hooks = [m.register_forward_hook(conv if isinstance(m, torch.nn.Conv2d) else linear)
             for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, image_size, image_size))
    for hook in hooks:
        hook.remove()
    return total


def matmul_flops(seconds: float, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def timed(networks: list[torch.nn.Module], images: torch.Tensor, seconds: float, batch_size: int) -> float:
    """Sources per second through every network (one classify shard's work per pass over ``images``)."""
    for network in networks:
        score(network, images[:batch_size], batch_size)  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for network in networks:
            score(network, images, batch_size)
        done += len(images)
    return done / (time.perf_counter() - start)


def cases(base: list[torch.nn.Module], precision: str) -> list[tuple[str, list[torch.nn.Module], int]]:
    """(label, networks, passes per source): 1 seed, 5 seeds, 5 seeds with the D4 average, in ``precision``."""
    import copy

    networks = [copy.deepcopy(model) for model in base[:5]]
    if precision == "bf16":  # as load_checkpoint scores a checkpoint trained in bf16
        networks = [fast_cpu.Bf16Inference(model).eval() for model in networks]
    return [("1 seed", networks[:1], 1), ("5 seeds", networks, 5),
            ("5 seeds, D4 8-view average", [D4Average(model).eval() for model in networks], 40)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tang2019")
    parser.add_argument("--checkpoints", nargs="*", help="checkpoints (default: random-weight models)")
    parser.add_argument("--dataset", help="a preprocessed .npz (default: random images)")
    parser.add_argument("--images", type=int, default=64, help="images per pass (default 64)")
    parser.add_argument("--image-size", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per case (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--precision", default="fp32,auto",
                        help="scoring precisions, side by side (default fp32,auto: today's path and the fast one)")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    torch.manual_seed(0)
    if arguments.checkpoints:
        from rgmorph.checkpoint import read_checkpoint

        base = []
        for path in arguments.checkpoints[:5]:  # the plain networks (load_checkpoint's fast layers are cases()'s)
            checkpoint = read_checkpoint(path)
            model = models.build(checkpoint["model_name"], in_channels=1, num_classes=len(checkpoint["class_names"]),
                                 image_size=checkpoint["image_size"], **checkpoint["model_options"])
            model.load_state_dict(checkpoint["state_dict"])
            base.append(model.eval())
    else:
        base = [models.build(arguments.model, in_channels=1, num_classes=2, image_size=arguments.image_size).eval()
                for _ in range(5)]
    while len(base) < 5:
        base.append(base[len(base) % len(base)])
    if arguments.dataset:
        with np.load(arguments.dataset) as data:
            images = torch.from_numpy(data["images"][:arguments.images])
    else:
        images = torch.rand(arguments.images, arguments.image_size, arguments.image_size)
    size = int(images.shape[-1])
    macs = multiply_adds(base[0], size)
    print(f"{arguments.model}: {macs / 1e6:.1f} M multiply-adds ({2 * macs / 1e6:.1f} MFLOP) per image and view; "
          f"{torch.get_num_threads()} torch threads; {len(images)} images of {size}x{size}, batch {arguments.batch_size}")
    matmul = matmul_flops(arguments.seconds)
    for precision in [fast_cpu.resolve_precision(item, "cpu") for item in arguments.precision.split(",")]:
        print(f"precision {precision}:")
        for label, networks, passes in cases(base, precision):
            rate = timed(networks, images, arguments.seconds, arguments.batch_size)
            achieved = rate * passes * 2 * macs
            print(f"  {label:<28} {rate:9.1f} sources/s   {achieved / 1e9:7.2f} GFLOP/s achieved "
                  f"({achieved / matmul:.0%} of the matmul's)")
    print(f"{'2048x2048 fp32 matmul':<30} {'':>9}             {matmul / 1e9:7.2f} GFLOP/s")


if __name__ == "__main__":
    main()
