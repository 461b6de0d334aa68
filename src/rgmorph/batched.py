"""Several seeds' training runs of one architecture at once, as one batched model, with the data on the device.

A *seed batch* (:class:`SeedBatch`) trains a list of *seed runs* (:class:`SeedRun`): training runs of the
same registry model that differ in their seed (and possibly their dataset or starting weights). Their
parameters are stacked along a leading run axis and one ``torch.func.vmap`` of ``functional_call`` runs
every run's forward pass at once (convolutions become grouped convolutions, linear layers batched matrix
products), so a step costs about as many kernel launches as one model's step while each run keeps:

* its own batch of ``batch_size`` images, drawn from its own shuffled order;
* its own augmentation (any-angle rotation by an affine grid, flips) and its own dropout masks;
* its own batch-norm statistics, optimiser state, validation score and best checkpoint.

Every random number of a run comes from that run's own CPU generators, seeded from its seed
(:class:`RunStreams`), and is moved to the device once per epoch. So a run's draws are the same
whether it trains alone or beside others, and on a CPU or a GPU: runs differ only by floating-point
rounding (summation order in grouped against single convolutions, CPU against GPU kernels).

Adam is element-wise, and the summed loss has each run's gradient in its own slice, so the
stacked update equals the separate ones. On the CPU, where grouped convolutions are slow to
differentiate, the runs' forward passes run one after another instead (``strategy``): then a
run's arithmetic is exactly that of a lone run.

On CUDA the step (gather, augmentation, forward, backward, metric sums) is captured once per batch
shape as a CUDA graph and replayed, so the hot loop launches one graph and the fused optimiser; the
first epoch runs eagerly (warm-up). Mixed precision (bf16 autocast) is optional. No step reads a
value back to the host: the training loss and accuracy are summed on the device and read once an
epoch.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from rgmorph import fast_cpu, models
from rgmorph.augment import affine_matrices, broadcast_affine_grid
from rgmorph.train_settings import TrainSettings

log = logging.getLogger(__name__)

# Purposes of a run's random streams: each gets its own seed derived from the run's seed.
_STREAMS = ("shuffle", "augment", "dropout")


# Eval-mode passes go through in chunks of this many pixels: on a CPU 16 images of 150 x 150 keep a layer's
# output in cache (Tang CNN: 1.6 times the images/s of one chunk of 92, the same outputs bit for bit)
EVAL_CHUNK_PIXELS = 16 * 150 * 150


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """Have glibc's malloc keep freed memory for reuse rather than hand it back to the kernel (process-wide).

    By default every block above malloc's mmap threshold (a few MB: the stacked runs' gradients, AlexNet's
    fully connected layers) is mapped afresh and zero-filled by the kernel at each step; AlexNet's five-seed
    CPU job spent half its time there. False (nothing changed) where the C library has no mallopt.
    """
    library = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(library), "mallopt", None) if library else None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def stream_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one purpose of one run, independent of every other (seed, purpose)."""
    sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=(_STREAMS.index(purpose),))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class RunStreams:
    """The random numbers one run draws each epoch, from CPU generators of its own."""

    def __init__(self, seed: int):
        self.generators = {purpose: torch.Generator().manual_seed(stream_seed(seed, purpose)) for purpose in _STREAMS}

    def epoch(self, count: int, dropout_sites: dict[str, tuple[float, tuple[int, ...]]],
              sampling_weights: torch.Tensor | None = None) -> tuple:
        """(order (count,), augmentation draws (count, 3), {site: keep-mask (count, *shape)}). With
        ``sampling_weights`` the order is ``count`` draws with replacement instead of a permutation."""
        if sampling_weights is None:
            order = torch.randperm(count, generator=self.generators["shuffle"])
        else:
            order = torch.multinomial(sampling_weights, count, replacement=True, generator=self.generators["shuffle"])
        draws = torch.rand(count, 3, generator=self.generators["augment"])
        masks = {name: torch.rand((count, *shape), generator=self.generators["dropout"]) >= p
                 for name, (p, shape) in dropout_sites.items()}
        return order, draws, masks

    def state(self) -> dict:
        return {purpose: generator.get_state() for purpose, generator in self.generators.items()}

    def load_state(self, state: dict) -> None:
        for purpose, generator in self.generators.items():
            generator.set_state(state[purpose])


def augment_batch(images: torch.Tensor, draws: torch.Tensor, rotate: bool, hflip: bool, vflip: bool,
                  broadcast_grid: bool = False) -> torch.Tensor:
    """Rotate and flip each image by its draws; ``broadcast_grid``: the sampling grid by broadcasting (the fast
    path's; equal to affine_grid's within rounding, not bit for bit)."""
    if not (rotate or hflip or vflip):
        return images
    matrices = affine_matrices(draws, rotate, hflip, vflip).to(images.dtype)
    grid = (broadcast_affine_grid(matrices, list(images.shape)) if broadcast_grid
            else F.affine_grid(matrices, list(images.shape), align_corners=False))
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def d4_views(images: torch.Tensor) -> list[torch.Tensor]:
    """The 8 exact symmetries of the square (quarter turns, with and without a mirror) of (..., H, W)."""
    views = []
    for mirrored in (images, images.flip(-1)):
        views += [torch.rot90(mirrored, k, dims=(-2, -1)) for k in range(4)]
    return views


class D4Average(nn.Module):
    """Test-time augmentation: the log of the class probabilities averaged over the 8 D4 views."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return average_log_probabilities([self.model(view) for view in d4_views(images)])


def average_log_probabilities(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    stacked = torch.stack([torch.log_softmax(item.float(), dim=-1) for item in logits])
    return torch.logsumexp(stacked, dim=0) - math.log(len(logits))


class MaskedDropout(nn.Module):
    """Dropout whose keep-mask is handed in (drawn from the run's own generator) instead of drawn here."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.register_buffer("mask", torch.ones(0, dtype=torch.bool), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return features
        return features * self.mask.to(features.dtype) * (1.0 / (1.0 - self.p))


def _replace_dropout(module: nn.Module) -> None:
    for name, child in list(module._modules.items()):
        if isinstance(child, nn.Dropout):
            module._modules[name] = MaskedDropout(child.p)
        elif child is not None:
            _replace_dropout(child)


def _dropout_sites(template: nn.Module, in_channels: int, image_size: int) -> dict[str, tuple[float, tuple[int, ...]]]:
    """{mask buffer name: (p, per-image shape)} of every dropout layer, probed with one forward pass."""
    probe = copy.deepcopy(template).to("cpu").eval()
    shapes, hooks = {}, []
    for name, module in probe.named_modules():
        if isinstance(module, MaskedDropout):
            hooks.append(module.register_forward_hook(
                lambda mod, inputs, output, name=name: shapes.__setitem__(name, (mod.p, tuple(inputs[0].shape[1:])))))
    with torch.no_grad():
        probe(torch.zeros(1, in_channels, image_size, image_size))
    for hook in hooks:
        hook.remove()
    return {f"{name}.mask": value for name, value in shapes.items() if value[0] > 0}


@dataclass
class SeedRun:
    """One seed's training run in a seed batch."""

    seed: int
    data: int = 0  # index of its dataset in the batch's list of datasets
    initial_state: dict | None = None  # weights to start from (transfer learning) instead of the seeded init
    reinitialise: Sequence[str] = ()  # module prefixes kept at their seeded init even with initial_state


@dataclass
class Freeze:
    """Layers kept as they are (transfer learning)."""

    prefixes: Sequence[str] = ()  # module prefixes whose weights are not trained
    # batch norm inside frozen modules: 'adapt' normalises with the statistics of this training data (batch
    # statistics in training, recomputed ones in validation: AdaBN, for a new survey), 'keep' with the
    # pre-trained running statistics (the modules stay in eval mode)
    batch_norm: str = "adapt"


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def lr_factor(schedule: str, epochs: int):
    """The learning-rate factor of (0-based) epoch ``e``: cosine decay to zero at the end, or constant."""
    if schedule == "constant":
        return lambda e: 1.0
    return lambda e: (1 + math.cos(math.pi * e / epochs)) / 2


class SeedBatch:
    """Train the seed ``runs`` of one architecture together, as ``settings`` say (batch size, optimiser,
    learning rate and schedule, augmentation, precision, batch-norm statistics, strategy, model options).

    Datasets: (fit images (N, C, H, W) float32, fit labels (N,), validation images, validation labels) per
    dataset index; every run's fit set must have the same size so that all runs take the same number of
    steps. ``settings.strategy``: 'vmap' one batched forward for all runs (grouped convolutions), 'loop' one
    forward per run (each run's arithmetic exactly that of a lone run), 'auto' vmap on CUDA and loop on the
    CPU, where grouped-convolution backward passes are slow. ``settings.batch_norm_statistics``:
    'recomputed' averages the statistics afresh over the fit images before each validation ("precise BN"),
    'running' keeps the usual running averages, which lag far behind fast-moving weights."""

    def __init__(self, model_name: str, runs: Sequence[SeedRun], datasets: Sequence[tuple], settings: TrainSettings,
                 device: torch.device | str = "cpu", num_classes: int = 2, freeze: Freeze | None = None):
        self.model_name, self.settings, self.device = model_name, settings, torch.device(device)
        self.precision = fast_cpu.resolve_precision(settings.precision, self.device)  # what runs: fp32 or bf16
        if self.device.type == "cpu":
            keep_freed_memory_for_reuse()
        self.freeze = freeze or Freeze()
        self.runs = list(runs)
        fit_counts = {len(datasets[run.data][1]) for run in self.runs}
        if len(fit_counts) != 1:
            raise ValueError(f"the runs of one seed batch need fit sets of one size, not {sorted(fit_counts)}")
        self.fit_count = fit_counts.pop()
        in_channels, image_size = datasets[0][0].shape[1], datasets[0][0].shape[-1]
        self.strategy = settings.strategy if settings.strategy != "auto" else (
            "vmap" if self.device.type == "cuda" and len(self.runs) > 1 else "loop")
        built = self._build_models(in_channels, image_size, num_classes)
        self._stack_weights(built)
        self._make_template(built[0], in_channels, image_size)
        self._find_constant_trunk(built[0])
        self._place_data(datasets)
        self._make_optimiser()
        self.averaged = self._start_average()
        self.streams = [RunStreams(run.seed) for run in self.runs]
        self._balance_classes(num_classes)
        self.loss_sum = torch.zeros(len(self.runs), device=self.device)
        self.correct = torch.zeros(len(self.runs), device=self.device, dtype=torch.int64)
        self.steps_done = 0
        self.graphs: dict[int, tuple] = {}
        self.use_graphs = bool(settings.cuda_graphs and self.device.type == "cuda")
        self._side_stream = torch.cuda.Stream(self.device) if self.use_graphs else None
        self.epochs_here = 0  # in this process (epochs in all: self.scheduler.last_epoch)
        # per test-time augmentation ('none', 'd4'), the best state of each run, on the device
        self.best: dict[str, tuple[dict, dict]] = {}

    def _balance_classes(self, num_classes: int) -> None:
        """Per run, from its fit labels: loss weights n / (K n_class) ('loss') or per-image sampling
        weights 1 / n_class ('sampling'); neither for 'none' (the unweighted code path, unchanged)."""
        self.loss_weights, self.sampling_weights = None, None
        if self.settings.class_balance == "none":
            return
        fit_labels = torch.stack([self.pool_labels[offset: offset + self.fit_count] for offset in self.offsets.tolist()])
        counts = torch.stack([torch.bincount(labels, minlength=num_classes) for labels in fit_labels]).double()
        if (counts == 0).any():
            raise ValueError(f"class_balance={self.settings.class_balance!r}: a class has no fit image "
                             f"(fit counts per class {counts.long().tolist()})")
        if self.settings.class_balance == "loss":
            self.loss_weights = (self.fit_count / (num_classes * counts)).float().to(self.device)
        else:
            self.sampling_weights = [(1.0 / counts[k])[labels].cpu() for k, labels in enumerate(fit_labels)]

    def _build_models(self, in_channels: int, image_size: int, num_classes: int) -> list[nn.Module]:
        """One registry model per run, seeded as a lone run with its seed (or with its initial state)."""
        built = []
        for run in self.runs:
            torch.manual_seed(run.seed)  # the same initial weights as a lone run with this seed
            model = models.build(self.model_name, in_channels=in_channels, num_classes=num_classes,
                                 image_size=image_size, **self.settings.model_options)
            if run.initial_state is not None:
                fresh = model.state_dict()
                state = {key: (fresh[key] if _matches(key, run.reinitialise) else value)
                         for key, value in run.initial_state.items()}
                model.load_state_dict(state)
            built.append(model)
        return built

    def _stack_weights(self, built: list[nn.Module]) -> None:
        """The runs' parameters and persistent buffers stacked along a leading run axis, on the device."""
        first = built[0]
        self.parameter_count = models.count_parameters(first)
        for prefix in self.freeze.prefixes:
            first.get_submodule(prefix)  # an unknown prefix fails here, by name
        persistent = set(first.state_dict())
        self.param_names = [name for name, _ in first.named_parameters()]
        self.buffer_names = [name for name, _ in first.named_buffers() if name in persistent]
        self.trainable_names = [name for name in self.param_names if not _matches(name, self.freeze.prefixes)]
        self.trainable_count = sum(p.numel() for name, p in first.named_parameters() if name in self.trainable_names)
        self.params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in built]).to(self.device)
                       for name in self.param_names}
        # 'loop': each run's trainable weights are leaves of their own (views into the stacks), so each gradient
        # accumulates in place instead of every step stacking the runs' gradients (AlexNet: 335 MB a step)
        self.run_params = [{name: self.params[name][index] for name in self.trainable_names}
                           for index in range(len(self.runs))] if self.strategy == "loop" else []
        for leaf in [self.params[name] for name in self.trainable_names] if not self.run_params else \
                [value for run in self.run_params for value in run.values()]:
            leaf.requires_grad_(True)
        self.buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in built]).to(self.device)
                        for name in self.buffer_names}
        # constants (non-persistent buffers such as filter-rotation matrices): one copy, not vmapped
        self.shared = {name: buffer.to(self.device) for name, buffer in first.named_buffers() if name not in persistent}

    def _make_template(self, first: nn.Module, in_channels: int, image_size: int) -> None:
        """A weightless copy of the architecture (on the meta device) that functional_call fills."""
        template = copy.deepcopy(first)
        _replace_dropout(template)
        if self.precision == "bf16" and self.device.type == "cpu" and self.strategy == "loop":
            fast_cpu.use_fast_layers(template)  # vmap cannot query channels-last layouts
        self.dropout_sites = _dropout_sites(template, in_channels, image_size)
        self.template = template.to("meta")
        self.frozen_modules = ([self.template.get_submodule(prefix) for prefix in self.freeze.prefixes]
                               if self.freeze.batch_norm == "keep" else [])

    def _find_constant_trunk(self, first: nn.Module) -> None:
        """A frozen ``features`` trunk (transfer learning) gives each unaugmented image the same features every
        epoch once its batch-norm statistics are fixed: those are recomputed once ('adapt'; the weights before
        them are frozen too) or kept ('keep'). Validation then runs the trunk once and the head each epoch."""
        self.trunk_is_constant = (isinstance(first, models.TrunkHead) and list(self.freeze.prefixes) == ["features"]
                                  and (self.freeze.batch_norm == "keep"
                                       or self.settings.batch_norm_statistics == "recomputed"))
        trunk_layers = [f"features.{name}" for name, module in first.features.named_modules()
                        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
                        ] if self.trunk_is_constant and self.freeze.batch_norm == "adapt" else []
        self.trunk_statistic_names = [name for layer in trunk_layers for name in self.buffer_names
                                      if name.startswith(layer + ".")]
        # the trunk's statistics as recomputed in this process (None: not yet), and its validation features
        self.trunk_statistics: dict | None = None if self.trunk_statistic_names else {}
        self.validation_features: dict[str, list] = {}

    def _place_data(self, datasets: Sequence[tuple]) -> None:
        """Every dataset's fit images in one device tensor (runs index into it); validation sets on the device."""
        offsets, images, labels = [], [], []
        for fit_images, fit_labels, _, _ in datasets:
            offsets.append(sum(len(part) for part in labels))
            images.append(torch.as_tensor(fit_images, dtype=torch.float32))
            labels.append(torch.as_tensor(fit_labels, dtype=torch.int64))
        self.pool_images = torch.cat(images).to(self.device)
        self.pool_labels = torch.cat(labels).to(self.device)
        self.offsets = torch.tensor([offsets[run.data] for run in self.runs], device=self.device)
        self.validation = [(torch.as_tensor(v_images, dtype=torch.float32).to(self.device),
                            torch.as_tensor(v_labels, dtype=torch.int64).to(self.device))
                           for _, _, v_images, v_labels in datasets]

    def _make_optimiser(self) -> None:
        settings = self.settings
        # the fused CPU kernel is ~6x foreach's on AlexNet's 10^7-weight classifier; fp32 keeps foreach's arithmetic
        fused = self.device.type == "cuda" or self.precision == "bf16"
        optimiser_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[settings.optimizer]
        self.optimiser = optimiser_class(self._trainable(), lr=settings.learning_rate,
                                         weight_decay=settings.weight_decay,
                                         **({"fused": True} if fused else {"foreach": True}))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimiser,
                                                           lr_factor(settings.lr_schedule, settings.epochs))

    def _start_average(self) -> dict | None:
        """weight_averaging 'ema': the runs' averaged trainable weights (stacked), starting at the initial ones."""
        if self.settings.weight_averaging == "none":
            return None
        if self.settings.batch_norm_statistics != "recomputed":
            raise ValueError("train.weight_averaging 'ema' needs train.batch_norm_statistics 'recomputed': the "
                             "running statistics belong to the trained weights, not to their average")
        return {name: self.params[name].detach().clone() for name in self.trainable_names}

    @torch.no_grad()
    def _update_average(self) -> None:
        """One EMA step after optimiser step number ``steps_done`` (decay ramped up over the first steps)."""
        decay = min(self.settings.ema_decay, (1 + self.steps_done) / (10 + self.steps_done))
        for name, average in self.averaged.items():
            average.lerp_(self.params[name].detach(), 1.0 - decay)

    def evaluated_params(self) -> dict | None:
        """The weights that validation scores and selection keeps: the trained ones (None: the current
        leaves), or with weight averaging the averaged trainable weights beside the frozen ones."""
        return None if self.averaged is None else {**self.params, **self.averaged}

    @property
    def learning_rate(self) -> float:
        """The learning rate of the next epoch."""
        return self.optimiser.param_groups[0]["lr"]

    # ------------------------------------------------------------------ forward

    def _autocast(self):
        return fast_cpu.autocast(self.precision, self.device)

    def _forward(self, images: torch.Tensor, masks: dict | None, params: dict | None = None,
                 buffers: dict | None = None, part: str = "") -> torch.Tensor:
        """(S, B, C, H, W) -> (S, B, classes) logits: run s's weights on run s's images (through the submodule
        ``part`` alone if given: 'features' or 'classifier' of a TrunkHead)."""
        leaves = self._run_leaves(params is None, part)
        params = self.params if params is None else params
        buffers = self.buffers if buffers is None else buffers
        shared, template = self.shared, self.template
        if part:
            template = template.get_submodule(part)
            params, buffers, masks, shared = ({name[len(part) + 1:]: value for name, value in values.items()
                                               if name.startswith(part + ".")}
                                              for values in (params, buffers, masks or {}, shared))
        if self.strategy == "loop":
            # unbind: views whose in-place updates (batch-norm statistics) reach the stacked tensors
            params, buffers, masks = ({name: value.unbind(0) for name, value in values.items()}
                                      for values in (params, buffers, masks or {}))
            outputs = []
            for index in range(images.shape[0]):
                run_params = {**{name: values[index] for name, values in params.items()}, **leaves[index]}
                run_buffers, run_masks = ({name: values[index] for name, values in part_values.items()}
                                          for part_values in (buffers, masks))
                outputs.append(functional_call(template, (run_params, run_buffers, run_masks, shared),
                                               (images[index],)))
            return torch.stack(outputs)

        def one(run_params, run_buffers, run_masks, run_images):
            return functional_call(template, (run_params, run_buffers, run_masks, shared), (run_images,))

        return vmap(one, randomness="error")(params, buffers, masks or {}, images)

    def _run_leaves(self, current: bool, part: str) -> list[dict]:
        """Per run, its trainable leaves (named within submodule ``part``) where the current weights run."""
        if not current or not self.run_params:
            return [{} for _ in self.runs]
        prefix = part + "." if part else ""
        return [{name[len(prefix):]: value for name, value in run.items() if name.startswith(prefix)}
                for run in self.run_params]

    def set_training(self, training: bool) -> None:
        self.template.train(training)
        for module in self.frozen_modules:
            module.eval()  # frozen layers keep the pre-trained batch-norm statistics ('keep')

    # --------------------------------------------------------------- training

    def _step(self, index: torch.Tensor, draws: torch.Tensor, masks: dict) -> None:
        """Forward, backward and the metric sums of one batch; the optimiser step is separate."""
        size, batch = index.shape
        flat = (index + self.offsets[:, None]).reshape(-1)
        images = self.pool_images.index_select(0, flat)
        labels = self.pool_labels.index_select(0, flat).view(size, batch)
        augment = self.settings.augment
        images = augment_batch(images, draws.reshape(-1, 3), augment.get("rotate", True), augment.get("hflip", True),
                               augment.get("vflip", True), broadcast_grid=self.precision == "bf16")
        with self._autocast():
            logits = self._forward(images.view(size, batch, *images.shape[1:]), masks)
        losses = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="none",
                                 label_smoothing=self.settings.label_smoothing).view(size, batch)
        if self.loss_weights is None:
            losses = losses.mean(1)
        else:  # the weighted mean F.cross_entropy(weight=...) takes, with each run's own class weights
            weights = torch.gather(self.loss_weights, 1, labels)
            losses = (losses * weights).sum(1) / weights.sum(1)
        losses.sum().backward()
        with torch.no_grad():
            self.loss_sum += losses.detach() * batch
            self.correct += (logits.argmax(-1) == labels).sum(1)

    def _trainable(self) -> list[torch.Tensor]:
        if self.run_params:
            return [value for run in self.run_params for value in run.values()]
        return [self.params[name] for name in self.trainable_names]

    def _run_step(self, index: torch.Tensor, draws: torch.Tensor, masks: dict, allow_capture: bool) -> None:
        batch = index.shape[1]
        if self.use_graphs and batch in self.graphs:
            graph, static_index, static_draws, static_masks, grads = self.graphs[batch]
            static_index.copy_(index)
            static_draws.copy_(draws)
            for name, mask in masks.items():
                static_masks[name].copy_(mask)
            graph.replay()
            for parameter, grad in zip(self._trainable(), grads):
                parameter.grad = grad
        elif self.use_graphs and allow_capture:
            try:
                self._capture(index, draws, masks)
            except Exception as error:  # fall back to eager steps rather than fail the run
                log.warning("CUDA graph capture failed (%s: %s); continuing without CUDA graphs",
                            type(error).__name__, error)
                self.use_graphs, self.graphs = False, {}
                torch.cuda.synchronize(self.device)
                self.optimiser.zero_grad(set_to_none=True)
                self._step(index, draws, masks)
        elif self._side_stream is not None:  # warm-up before capture belongs on a side stream
            self._side_stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(self._side_stream):
                self.optimiser.zero_grad(set_to_none=True)
                self._step(index, draws, masks)
                self.optimiser.step()
            torch.cuda.current_stream(self.device).wait_stream(self._side_stream)
            self._after_step()
            return
        else:
            self.optimiser.zero_grad(set_to_none=True)
            self._step(index, draws, masks)
        self.optimiser.step()
        self._after_step()

    def _after_step(self) -> None:
        if self.averaged is not None:
            self._update_average()
        self.steps_done += 1

    def _capture(self, index: torch.Tensor, draws: torch.Tensor, masks: dict) -> None:
        static_index, static_draws = index.clone(), draws.clone()
        static_masks = {name: mask.clone() for name, mask in masks.items()}
        self.optimiser.zero_grad(set_to_none=False)
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # no other thread may use CUDA meanwhile (no data loader here)
            self._step(static_index, static_draws, static_masks)
        grads = [parameter.grad for parameter in self._trainable()]
        self.graphs[index.shape[1]] = (graph, static_index, static_draws, static_masks, grads)
        graph.replay()  # capturing ran nothing: this replay is the step
        log.info("captured the training step for batches of %d as a CUDA graph", index.shape[1])

    def train_epoch(self) -> tuple[np.ndarray, np.ndarray]:
        """One pass over every run's fit set at ``learning_rate`` (then the schedule steps); (mean training
        loss, accuracy) per run."""
        self.set_training(True)
        draws = [stream.epoch(self.fit_count, self.dropout_sites,
                              None if self.sampling_weights is None else self.sampling_weights[k])
                 for k, stream in enumerate(self.streams)]
        order = torch.stack([item[0] for item in draws]).to(self.device, non_blocking=True)
        augment = torch.stack([item[1] for item in draws]).to(self.device, non_blocking=True)
        masks = {name: torch.stack([item[2][name] for item in draws]).to(self.device, non_blocking=True)
                 for name in self.dropout_sites}
        self.loss_sum.zero_()
        self.correct.zero_()
        allow_capture = self.epochs_here >= 1  # this process's first epoch warms up eagerly (also after a resume)
        batch_size = self.settings.batch_size
        for start in range(0, self.fit_count, batch_size):
            stop = min(start + batch_size, self.fit_count)
            self._run_step(order[:, start:stop], augment[:, start:stop],
                           {name: mask[:, start:stop] for name, mask in masks.items()}, allow_capture)
        self.scheduler.step()
        self.epochs_here += 1
        return (self.loss_sum / self.fit_count).cpu().numpy(), (self.correct.double() / self.fit_count).cpu().numpy()

    # ------------------------------------------------------------- validation

    def batch_norm_index(self, images: int | None = None) -> torch.Tensor:
        """Fit-image positions whose statistics ``recompute_batch_norm`` averages: ``images`` (default
        ``settings.batch_norm_images``; 0: all) evenly spaced over the fit set, so every part of it is seen."""
        images = self.settings.batch_norm_images if images is None else images
        if not images or images >= self.fit_count:
            return torch.arange(self.fit_count, device=self.device)
        return torch.linspace(0, self.fit_count - 1, images, device=self.device).round().long()

    @torch.no_grad()
    def recompute_batch_norm(self, images: int | None = None) -> None:
        """Set every trained batch-norm layer's statistics to the average of the per-batch statistics over
        the fit images of ``batch_norm_index(images)``, with the current weights (no random numbers are drawn)."""
        if self.settings.batch_norm_statistics != "recomputed":
            return
        layers = self._layers_to_recompute(explicit_images=images is not None)
        if layers:
            self._average_batch_statistics(layers, self.batch_norm_index(images))
        if self.trunk_statistics is None and images is None:
            self.trunk_statistics = {name: self.buffers[name].clone() for name in self.trunk_statistic_names}
            self.validation_features = {}
        self._restore_trunk_statistics()

    def _layers_to_recompute(self, explicit_images: bool) -> list[tuple[str, nn.Module]]:
        """The trained batch-norm layers, less a constant trunk's once its statistics are known (the same
        weights and images give the same values; other images than the configured ones, the trunk's too)."""
        frozen = {id(module) for kept in self.frozen_modules for module in kept.modules()}
        layers = [(name, module) for name, module in self.template.named_modules()
                  if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats
                  and id(module) not in frozen]
        if explicit_images and self.trunk_statistic_names:
            self.trunk_statistics, self.validation_features = None, {}
        if self.trunk_statistics:
            layers = [(name, module) for name, module in layers if not name.startswith("features.")]
        return layers

    def _average_batch_statistics(self, layers: list[tuple[str, nn.Module]], positions: torch.Tensor) -> None:
        """Train-mode forwards over the fit images at ``positions``, batch by batch, each layer's running
        statistics the mean of the batches' (dropout off)."""
        for name, _ in layers:
            self.buffers[f"{name}.running_mean"].zero_()
            self.buffers[f"{name}.running_var"].fill_(1.0)
        momenta = [module.momentum for _, module in layers]
        self.set_training(True)
        for module in self.template.modules():
            if isinstance(module, MaskedDropout):
                module.eval()
        try:
            batch_size = self.settings.batch_size
            for number, start in enumerate(range(0, len(positions), batch_size), start=1):
                for _, module in layers:
                    module.momentum = 1.0 / number  # running value = mean of the batches so far
                index = positions[start:start + batch_size]
                flat = (index[None, :] + self.offsets[:, None]).reshape(-1)
                batch = self.pool_images.index_select(0, flat)
                with self._autocast():
                    self._forward(batch.view(len(self.runs), -1, *batch.shape[1:]), None, self.evaluated_params())
        finally:
            for (_, module), momentum in zip(layers, momenta):
                module.momentum = momentum
            self.set_training(True)

    def _restore_trunk_statistics(self) -> None:
        """Undo what training steps (batch statistics, momentum) did to a constant trunk's running statistics."""
        for name, value in (self.trunk_statistics or {}).items():
            self.buffers[name].copy_(value)

    @torch.no_grad()
    def run_logits(self, images_per_run: list[torch.Tensor], params: dict | None = None, buffers: dict | None = None,
                   batch_size: int | None = None, tta: str = "none", trunk_features: list | None = None) -> torch.Tensor:
        """(S, N, classes) eval-mode outputs (log-probabilities with ``tta`` 'd4': the 8 D4 views averaged).
        ``trunk_features``: a list that keeps each chunk's trunk outputs (a constant trunk): filled on the first
        call, read on later ones."""
        self.set_training(False)
        try:
            count, size = len(images_per_run[0]), images_per_run[0].shape[-2] * images_per_run[0].shape[-1]
            batch_size = batch_size or max(1, EVAL_CHUNK_PIXELS // size)
            outputs = []
            for number, start in enumerate(range(0, count, batch_size)):
                with self._autocast():
                    if trunk_features is None:
                        views = [self._forward(view, None, params, buffers)
                                 for view in self._views(images_per_run, start, start + batch_size, tta)]
                    else:
                        if number == len(trunk_features):
                            inputs = self._views(images_per_run, start, start + batch_size, tta)
                            trunk_features.append([self._forward(view, None, params, buffers, part="features")
                                                   for view in inputs])
                        views = [self._forward(features, None, params, buffers, part="classifier")
                                 for features in trunk_features[number]]
                    if tta == "d4":
                        # run by run: over all runs in one tensor the CPU's vectorised exp and log round
                        # some elements otherwise than a lone run's (tails of the vector loops move)
                        out = torch.stack([average_log_probabilities([view[k] for view in views])
                                           for k in range(len(self.runs))])
                    else:
                        out = views[0].float()
                outputs.append(out)
            return torch.cat(outputs, dim=1)
        finally:
            self.set_training(True)

    def _views(self, images_per_run: list[torch.Tensor], start: int, stop: int, tta: str) -> list[torch.Tensor]:
        """Images [start:stop] of every run as (S, B, C, H, W), in the views of ``tta``."""
        first = images_per_run[0]
        if all(images is first for images in images_per_run):
            chunk = first[start:stop].unsqueeze(0).expand(len(self.runs), -1, -1, -1, -1)
        else:
            chunk = torch.stack([images[start:stop] for images in images_per_run])
        return d4_views(chunk) if tta == "d4" else [chunk]

    @torch.no_grad()
    def validate(self, tta: str = "none", best_of: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(validation loss, accuracy) per run, in eval mode, with test-time augmentation ``tta`` ('none' or
        'd4'; call ``recompute_batch_norm`` first), of the evaluated weights (``evaluated_params``) or of the
        best states kept for ``best_of``."""
        images = [self.validation[run.data][0] for run in self.runs]
        labels = torch.stack([self.validation[run.data][1] for run in self.runs])
        params, buffers = self.best[best_of] if best_of else (self.evaluated_params(), None)
        constant = self.trunk_is_constant and self.trunk_statistics is not None and not best_of
        logits = self.run_logits(images, params, buffers, tta=tta,
                                 trunk_features=self.validation_features.setdefault(tta, []) if constant else None)
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(labels.shape).mean(1)
        accuracy = (logits.argmax(-1) == labels).double().mean(1)
        return losses.cpu().numpy(), accuracy.cpu().numpy()

    @torch.no_grad()
    def keep_best(self, improved: Sequence[bool], tta: str = "none") -> None:
        """Copy the evaluated weights (``evaluated_params``) of the runs whose validation score (with ``tta``)
        improved into their best state for ``tta``."""
        params = self.evaluated_params() or self.params
        if tta not in self.best:
            self.best[tta] = ({name: value.detach().clone() for name, value in params.items()},
                               {name: value.clone() for name, value in self.buffers.items()})
            if all(improved):
                return
        mask = torch.tensor(list(improved), device=self.device)
        if not mask.any():
            return
        for source, target in zip((params, self.buffers), self.best[tta]):
            for name, value in source.items():
                shape = (-1,) + (1,) * (value.dim() - 1)
                target[name].copy_(torch.where(mask.view(shape), value.detach(), target[name]))

    def best_state(self, index: int, tta: str = "none") -> dict:
        """A registry model's state_dict of run ``index``'s best weights on validation with ``tta``, on the CPU."""
        return self._state(index, *self.best[tta])

    def current_state(self, index: int) -> dict:
        """A registry model's state_dict of run ``index``'s current weights, on the CPU."""
        return self._state(index, self.params, self.buffers)

    def _state(self, index: int, params: dict, buffers: dict) -> dict:
        state = {name: params[name][index].detach().cpu().clone() for name in self.param_names}
        state.update({name: buffers[name][index].cpu().clone() for name in self.buffer_names})
        return state

    # ----------------------------------------------------------------- resume

    def state_dict(self) -> dict:
        """Everything the rest of training depends on (weights, optimiser, random streams, best state)."""
        return {
            "params": {name: value.detach().cpu() for name, value in self.params.items()},
            "buffers": {name: value.cpu() for name, value in self.buffers.items()},
            "best": {tta: ({name: value.cpu() for name, value in params.items()},
                           {name: value.cpu() for name, value in buffers.items()})
                     for tta, (params, buffers) in self.best.items()},
            "optimiser": self.optimiser.state_dict(),
            "averaged": None if self.averaged is None else {name: value.cpu() for name, value in self.averaged.items()},
            "streams": [stream.state() for stream in self.streams],
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for source, target in ((state["params"], self.params), (state["buffers"], self.buffers)):
                for name, value in source.items():
                    target[name].copy_(value.to(self.device))
        self.best = {tta: ({name: value.to(self.device) for name, value in params.items()},
                           {name: value.to(self.device) for name, value in buffers.items()})
                     for tta, (params, buffers) in state["best"].items()}
        self.optimiser.load_state_dict(state["optimiser"])
        if self.averaged is not None:
            with torch.no_grad():
                for name, value in state["averaged"].items():
                    self.averaged[name].copy_(value.to(self.device))
        for stream, stream_state in zip(self.streams, state["streams"]):
            stream.load_state(stream_state)
        self.scheduler.load_state_dict(state["scheduler"])
        if self.trunk_statistic_names:  # recomputed afresh from the loaded weights
            self.trunk_statistics, self.validation_features = None, {}
