"""Training throughput: the pipeline's loop against a loop written the published way, per model variant.

Not a test: a measurement, all on one device in one run, so the numbers compare.

* ``batched``: rgmorph's loop (``rgmorph.batched.SeedBatch``): the dataset as one tensor on the
  device, augmentation batched there, ``--group-sizes`` models (seeds) stacked into one batched model,
  each with its own batch of 32; on CUDA the step is a CUDA graph.
* ``published``: a ``DataLoader`` whose dataset rotates (any angle, bilinear) and flips each image with
  PIL in ``__getitem__``, ``--workers`` loader processes, the same registry model, batch 32, Adam,
  the loss read back every step as the published training scripts do.

Images per second are aggregate training images (all stacked models together) over ``--seconds`` of
steady training after a warm-up; ``ratio`` is against the published loop for the same model, or with
``--no-published`` against the first ``--precision`` (the issue-25 comparison: today's fp32 path against the
fast one, ``--precision fp32,auto``; the precision column says what ran: auto is bf16 where the CPU has it).

    python scripts/benchmark_training.py --datasets /tmp/cut --models tang2019,lenet --seconds 20
    python scripts/benchmark_training.py --datasets DIR --check-graphs        # CUDA graph vs eager, GPU vs CPU
    python scripts/benchmark_training.py --datasets DIR --models tang2019 --deterministic 1,0 --precision fp32,bf16
    python scripts/benchmark_training.py --datasets results/datasets --group-sizes 5 --threads 1 --no-published \
        --precision fp32,auto --fit-count 64 --seconds 10     # today's path against the fast one, six networks

Comma lists of ``--deterministic`` and ``--precision`` sweep those settings (on a GPU: whether cuDNN
may pick non-deterministic, autotuned kernels, and bf16 autocast); the published loop is timed once per
``--deterministic`` value, so each ratio compares loops under the same kernel rules.

The whole study end to end is Snakemake's job (``scripts/gpu_checks.sh`` MODE=study on a GPU node).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))  # selection_check's old protocol, for the phase split

from rgmorph import fast_cpu, models  # noqa: E402
from rgmorph.batched import SeedBatch, SeedRun, keep_freed_memory_for_reuse  # noqa: E402
from rgmorph.train_settings import TrainSettings  # noqa: E402
from rgmorph.dataset import load_dataset  # noqa: E402
from rgmorph.train import make_deterministic, validation_split  # noqa: E402

BATCH = 32
NETWORKS = ["tang2019", "lenet", "alexnet", "vgg", "resnet", "dn_equivariant"]


def fit_data(datasets: Path, survey: str, fit_count: int | None):
    dataset = load_dataset(datasets / f"{survey}.npz")
    fit, validation = validation_split(dataset["labels"], np.flatnonzero(dataset["split"] == "train"), 0.2, 2019)
    if fit_count:
        fit = fit[:fit_count]
    images = torch.from_numpy(dataset["images"]).unsqueeze(1)
    labels = torch.from_numpy(dataset["labels"])
    return images[fit], labels[fit], images[validation], labels[validation]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- the published loop


class PILRotateFlip(torch.utils.data.Dataset):
    """Per-sample augmentation as torchvision's RandomRotation + RandomHorizontal/VerticalFlip do it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images = images[:, 0].numpy()
        self.labels = labels.numpy()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index])  # float32: mode "F"
        image = image.rotate(float(np.random.uniform(0, 360)), resample=Image.BILINEAR)
        if np.random.rand() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if np.random.rand() < 0.5:
            image = image.transpose(Image.FLIP_TOP_BOTTOM)
        return torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).unsqueeze(0), int(self.labels[index])


def _seed_worker(worker: int) -> None:
    np.random.seed((torch.initial_seed() + worker) % 2**32)


def published_loop(model_name: str, data, device: torch.device, seconds: float, workers: int) -> dict:
    images, labels = data[0], data[1]
    torch.manual_seed(0)
    model = models.build(model_name, image_size=images.shape[-1]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(PILRotateFlip(images, labels), batch_size=BATCH, shuffle=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0, worker_init_fn=_seed_worker)

    def steps():
        while True:
            for inputs, targets in loader:
                yield inputs, targets

    model.train()
    batches = steps()
    running = 0.0
    for _ in range(3):  # warm-up: workers started, kernels chosen
        inputs, targets = next(batches)
        loss = F.cross_entropy(model(inputs.to(device, non_blocking=True)), targets.to(device, non_blocking=True))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        running += loss.item()
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        inputs, targets = next(batches)
        loss = F.cross_entropy(model(inputs.to(device, non_blocking=True)), targets.to(device, non_blocking=True))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        running += loss.item()  # as the published scripts log it: one read-back per step
        count += len(targets)
    synchronize(device)
    elapsed = time.perf_counter() - started
    del batches, loader  # stop the loader's workers and pinning thread before the next measurement
    return {"images_per_s": count / elapsed, "seconds": elapsed, "models": 1, "cuda_graphs": False}


# ----------------------------------------------------------------------------- rgmorph's loop


def batched_loop(model_name: str, data, device: torch.device, seconds: float, group: int, cuda_graphs: bool = True,
                 precision: str = "fp32", strategy: str = "auto") -> dict:
    settings = TrainSettings(batch_size=BATCH, cuda_graphs=cuda_graphs, precision=precision, strategy=strategy,
                             learning_rate=1e-3, lr_schedule="constant")
    trainer = SeedBatch(model_name, [SeedRun(seed) for seed in range(group)], [data], settings, device)
    for _ in range(2):  # warm-up; the second epoch captures the CUDA graphs
        trainer.train_epoch()
    synchronize(device)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        trainer.train_epoch()  # reads the epoch's losses back: synchronised
        count += group * trainer.fit_count
    elapsed = time.perf_counter() - started
    return {"images_per_s": count / elapsed, "seconds": elapsed, "models": group, "cuda_graphs": trainer.use_graphs,
            "strategy": trainer.strategy, "precision": trainer.precision}


# ----------------------------------------------------------------------------- checks


def check_graphs(data, device: torch.device, model_names, epochs: int = 3) -> bool:
    """CUDA-graph steps against eager steps on the GPU, and the GPU against the CPU, from the same seeds."""
    ok = True
    for name in model_names:
        runs = {}
        for label, run_device, graphs in (("graphs", device, True), ("eager", device, False),
                                          ("cpu", torch.device("cpu"), False)):
            settings = TrainSettings(cuda_graphs=graphs, learning_rate=1e-3, lr_schedule="constant")
            trainer = SeedBatch(name, [SeedRun(0), SeedRun(1)], [data], settings, run_device)
            losses = [trainer.train_epoch()[0] for _ in range(epochs)]
            state = trainer.current_state(1)
            runs[label] = (np.array(losses), state, trainer.use_graphs)
        loss_graph = np.abs(runs["graphs"][0] - runs["eager"][0]).max()
        param_graph = max((runs["graphs"][1][k].float() - runs["eager"][1][k].float()).abs().max().item()
                          for k in runs["eager"][1])
        loss_cpu = np.abs(runs["eager"][0] - runs["cpu"][0]).max()
        param_cpu = max((runs["eager"][1][k].float() - runs["cpu"][1][k].float()).abs().max().item()
                        for k in runs["eager"][1])
        same = loss_graph < 1e-3 and runs["graphs"][2]
        ok &= bool(same)
        print(f"GRAPH CHECK {name}: graphs used {runs['graphs'][2]}; {epochs} epochs, graph vs eager max |dloss| "
              f"{loss_graph:.2e}, max |dparam| {param_graph:.2e}; GPU vs CPU max |dloss| {loss_cpu:.2e}, "
              f"max |dparam| {param_cpu:.2e}: {'OK' if same else 'MISMATCH'}", flush=True)
    return ok


# ----------------------------------------------------------------------------- where a job's time goes


def phase_split(model_name: str, dataset: Path, epochs: int, seeds: int, threads: int,
                transfer_from: Path | None = None) -> dict:
    """Seconds per phase of a short training job at the published settings (this code's selection), and what
    the old selection (statistics over every fit image, one view and 8 D4 views every epoch) took on the
    same weights. ``transfer_from``: a models folder of the other survey (results/models/NVSS): the job
    fine-tunes its checkpoints as the study's transfer runs do."""
    from rgmorph import settings as study
    from rgmorph.train import NetworkTraining
    from rgmorph.train_settings import TransferSpec
    from selection_check import old_scores

    config = study.load([REPO / "config" / "config.yaml", REPO / "config" / "published.yaml"])
    values = (study.transfer_settings if transfer_from else study.model_settings)(config, model_name)
    settings = TrainSettings.from_mapping({**values, "epochs": epochs, "threads": threads, "device": "cpu"})
    transfer = None
    if transfer_from:
        frozen, reinitialise = study.mode_layers(config, model_name, "frozen")
        transfer = TransferSpec(transfer_from.name, [transfer_from / model_name / f"seed{k}" / "checkpoint.pt"
                                                     for k in range(seeds)],
                                frozen, reinitialise, config["transfer"]["batch_norm"])
    training = NetworkTraining(dataset, model_name, list(range(seeds)), settings, transfer, Path("unused-last.pt"))
    training.started, old = time.monotonic(), 0.0
    for epoch in range(1, epochs + 1):
        training.epoch(epoch)
        start = time.monotonic()
        old_scores(training)
        old += time.monotonic() - start
    start = time.monotonic()
    training.score_other_views()
    return {**training.phase_seconds, "final_d4": time.monotonic() - start, "old_selection": old}


def print_phases(model_names, dataset: Path, epochs: int, seeds: int, threads: int,
                 transfer_from: Path | None = None) -> None:
    print(f"phase split: {epochs} epochs, {seeds} seeds, {threads} thread(s); seconds (selection's share of the "
          "epochs), then the selected states' D4 scoring, once per job")
    jobs = [(name, None) for name in model_names]
    if transfer_from:
        jobs += [(name, transfer_from) for name in model_names if (transfer_from / name).is_dir()]
    for name, source in jobs:
        p = phase_split(name, dataset, epochs, seeds, threads, source)
        steps, new = p["training_steps"], p["batch_norm_statistics"] + p["validation"]
        label = f"{name} from {source.name}" if source else name
        print(f"  {label:<22} steps {steps:7.1f} | ours: batch norm {p['batch_norm_statistics']:6.1f} + validation "
              f"{p['validation']:6.1f} = {100 * new / (steps + new):4.1f}%, then D4 once {p['final_d4']:5.1f} "
              f"| before: {p['old_selection']:6.1f} = "
              f"{100 * p['old_selection'] / (steps + p['old_selection']):4.1f}%", flush=True)


# ----------------------------------------------------------------------------- CPU step options


def step_rate(model_name: str, data, seconds: float, option: str) -> tuple[float, float]:
    """(images/s, loss after a fixed 4 steps from seed 0) of one model's plain training step with ``option``:
    'fp32', 'channels_last', 'compile', 'bf16' (CPU autocast), 'fast' (bf16 with rgmorph's fast layers and fused
    Adam, what ``train.precision: bf16`` runs) or 'fast_compile' (that, under torch.compile)."""
    images, labels = data[0][:BATCH].contiguous(), data[1][:BATCH]
    torch.manual_seed(0)
    model = models.build(model_name, image_size=images.shape[-1])
    if option == "channels_last":
        model, images = model.to(memory_format=torch.channels_last), images.to(memory_format=torch.channels_last)
    if option.startswith("fast"):
        fast_cpu.use_fast_layers(model)
    forward = torch.compile(model) if option in ("compile", "fast_compile") else model
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, fused=option.startswith("fast"))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=option in ("bf16", "fast", "fast_compile"))

    def step() -> float:
        with autocast:
            loss = F.cross_entropy(forward(images).float(), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    losses = [step() for _ in range(4)]  # also the warm-up (compilation)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        count += BATCH
    return count / (time.perf_counter() - started), losses[-1]


def print_cpu_options(model_names, data, seconds: float, options: list[str]) -> None:
    print(f"CPU step options ({torch.get_num_threads()} threads, one model, batch {BATCH}): images/s (x fp32), "
          "loss after 4 steps from seed 0 (a second run must repeat it bit for bit)")
    for name in model_names:
        base = None
        for option in options:
            try:
                rate, loss = step_rate(name, data, seconds, option)
                again = step_rate(name, data, 0.0, option)[1]
            except Exception as error:
                print(f"  {name:<15} {option:<14} failed: {type(error).__name__}: {str(error)[:120]}", flush=True)
                continue
            base = base or rate
            print(f"  {name:<15} {option:<14} {rate:8.1f} ({rate / base:4.2f}x)  loss {loss:.6f}"
                  f"{'' if loss == again else f' (rerun {again:.6f}: not reproducible)'}", flush=True)


# ----------------------------------------------------------------------------- thread placement


def placement(model_name: str, datasets: Path, survey: str, seconds: float, seeds: int, cores: int) -> None:
    """Aggregate images/s of one job with ``cores`` threads against ``cores`` one-thread jobs at once."""
    def launch(threads: int) -> subprocess.Popen:
        command = [sys.executable, __file__, "--datasets", str(datasets), "--survey", survey, "--models", model_name,
                   "--group-sizes", str(seeds), "--no-published", "--seconds", str(seconds), "--threads", str(threads)]
        return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def rate(process: subprocess.Popen) -> float:
        lines = [line for line in process.communicate()[0].splitlines() if line.startswith(model_name)]
        return float(lines[-1].split()[-3])

    one = rate(launch(cores))
    together = sum(rate(process) for process in [launch(1) for _ in range(cores)])
    print(f"placement {model_name}, {seeds} seeds per job: 1 job x {cores} threads {one:.1f} images/s; "
          f"{cores} jobs x 1 thread {together:.1f} images/s ({together / one:.2f}x)", flush=True)


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, required=True, help="folder with FIRST.npz (and NVSS.npz)")
    parser.add_argument("--survey", default="FIRST")
    parser.add_argument("--models", default=",".join(NETWORKS))
    parser.add_argument("--group-sizes", default="10", help="models stacked in rgmorph's loop, e.g. 1,10")
    parser.add_argument("--strategies", default="auto",
                        help="how stacked models run: vmap (one batched pass), loop (one pass each), auto; e.g. vmap,loop")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per loop and model")
    parser.add_argument("--workers", type=int, default=min(8, max(0, (os.cpu_count() or 1) - 1)),
                        help="DataLoader workers of the published loop")
    parser.add_argument("--fit-count", type=int, default=None, help="use only this many fit images (short CPU epochs)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--deterministic", default="1",
                        help="1: deterministic kernels (as the paper config), 0: cuDNN autotuned; a list sweeps, e.g. 1,0")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or auto (bf16 where native); a list sweeps, e.g. fp32,auto")
    parser.add_argument("--no-published", action="store_true", help="skip the published loop")
    parser.add_argument("--no-cuda-graphs", action="store_true", help="eager steps in rgmorph's loop")
    parser.add_argument("--out", type=Path, default=None, help="append rows to this CSV")
    parser.add_argument("--check-graphs", action="store_true", help="only compare CUDA-graph, eager and CPU training")
    parser.add_argument("--phases", type=int, default=0, metavar="EPOCHS",
                        help="also print where a short job of EPOCHS epochs spends its time, before and after")
    parser.add_argument("--transfer-from", type=Path, default=None, metavar="MODELS",
                        help="with --phases, also fine-tune the checkpoints under MODELS/NAME/seedK (e.g. "
                             "results/models/NVSS) as the transfer runs do")
    parser.add_argument("--cpu-options", nargs="?", const="fp32,channels_last,compile,bf16", default=None,
                        help="also time one model's step with these options (default fp32,channels_last,compile,bf16;"
                             " also fast, fast_compile)")
    parser.add_argument("--compile-loop", action="store_true", help="rgmorph's loop with each seed's forward compiled")
    parser.add_argument("--placement", type=int, default=0, metavar="CORES",
                        help="also compare one job of CORES threads with CORES one-thread jobs")
    arguments = parser.parse_args(argv)
    if arguments.transfer_from and not arguments.transfer_from.is_dir():
        parser.error(f"--transfer-from {arguments.transfer_from}: no such folder (a models folder such as "
                     "results/models/NVSS, with NAME/seedK/checkpoint.pt)")
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = torch.device("cuda" if arguments.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if arguments.device == "auto" else arguments.device))
    determinism = [item == "1" for item in arguments.deterministic.split(",") if item]
    precisions = [item for item in arguments.precision.split(",") if item]
    if (not determinism or not precisions or set(arguments.deterministic.split(",")) - {"0", "1"}
            or set(precisions) - set(fast_cpu.PRECISIONS)):
        parser.error(f"--deterministic takes 1 and/or 0, --precision some of {list(fast_cpu.PRECISIONS)}")
    make_deterministic(0, determinism[0])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    # rgmorph's CPU jobs set this (SeedBatch); set first, so that the published loop runs under it too
    reuse = device.type == "cpu" and keep_freed_memory_for_reuse()
    print(f"device: {name}; torch {torch.__version__}{'; malloc keeps freed memory for reuse' if reuse else ''}",
          flush=True)
    if device.type == "cpu":
        print(f"CPU bf16: {'native' if fast_cpu.cpu_has_bf16() else 'none (auto runs fp32)'}", flush=True)

    if arguments.compile_loop:  # every per-seed forward of rgmorph's loop through torch.compile (inductor)
        import rgmorph.batched

        rgmorph.batched.functional_call = torch.compile(rgmorph.batched.functional_call, dynamic=False)
        print("rgmorph's loop: per-seed functional_call under torch.compile", flush=True)
    data = fit_data(arguments.datasets, arguments.survey, arguments.fit_count)
    selected = [item for item in arguments.models.split(",") if item]
    if arguments.check_graphs:
        if device.type != "cuda":
            print("GRAPH CHECK: no CUDA device, nothing to compare")
            return 0
        return 0 if check_graphs(data, device, selected) else 3

    header = ["device", "model", "loop", "models", "strategy", "precision", "deterministic", "images_per_s", "ratio",
              "cuda_graphs", "seconds", "fit_images"]

    def record(row: dict) -> None:
        """Append one row to --out at once: a run stopped by a time limit keeps what it measured."""
        if not arguments.out:
            return
        new = not arguments.out.exists()
        arguments.out.parent.mkdir(parents=True, exist_ok=True)
        with open(arguments.out, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({"device": name, "fit_images": len(data[1]), **row})

    print(f"{'model':<15} {'loop':<18} {'models':>6} {'precision':>9} {'determ.':>7} {'images/s':>10} {'ratio':>7}  graphs",
          flush=True)
    for deterministic in determinism:
        make_deterministic(0, deterministic)
        for model_name in selected:
            reference = None
            if not arguments.no_published:
                try:
                    reference = published_loop(model_name, data, device, arguments.seconds, arguments.workers)
                    record({"model": model_name, "loop": "published", **reference, "ratio": 1.0, "precision": "fp32",
                            "deterministic": int(deterministic)})
                    print(f"{model_name:<15} {'published':<18} {1:>6} {'fp32':>9} {int(deterministic):>7} "
                          f"{reference['images_per_s']:>10.1f} {1.0:>7.2f}", flush=True)
                except Exception as error:
                    print(f"{model_name:<15} published loop failed: {error!r}", flush=True)
            for group in [int(size) for size in arguments.group_sizes.split(",")]:
                for strategy in (arguments.strategies.split(",") if group > 1 else ["auto"]):
                    first = None  # without the published loop, ratios are to the first --precision (today's fp32)
                    for precision in precisions:
                        try:
                            result = batched_loop(model_name, data, device, arguments.seconds, group,
                                                  cuda_graphs=not arguments.no_cuda_graphs, precision=precision,
                                                  strategy=strategy)
                        except Exception as error:
                            print(f"{model_name:<15} batched x{group} ({strategy}, {precision}) failed: {error!r}",
                                  flush=True)
                            continue
                        first = first or result
                        ratio = result["images_per_s"] / (reference or first)["images_per_s"]
                        record({"model": model_name, "loop": "batched", **result, "ratio": ratio,
                                "deterministic": int(deterministic)})
                        print(f"{model_name:<15} {'batched (' + result['strategy'] + ')':<18} {group:>6} "
                              f"{result['precision']:>9} {int(deterministic):>7} {result['images_per_s']:>10.1f} {ratio:>7.2f}  "
                              f"{result['cuda_graphs']}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
    if arguments.phases:
        print_phases(selected, arguments.datasets / f"{arguments.survey}.npz", arguments.phases,
                     int(arguments.group_sizes.split(",")[-1]), torch.get_num_threads(), arguments.transfer_from)
    if arguments.cpu_options:
        print_cpu_options(selected, data, arguments.seconds, arguments.cpu_options.split(","))
    if arguments.placement:
        for name in selected:
            placement(name, arguments.datasets, arguments.survey, arguments.seconds,
                      int(arguments.group_sizes.split(",")[-1]), arguments.placement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
