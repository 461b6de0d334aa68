"""Where every output lives: the one place that builds (and reads back) result paths.

A run is one seed of one model trained on one survey, from scratch or fine-tuned from the same
seed's network trained on another survey (transfer learning), in one of the TRANSFER_MODES::

    {results}/models/{survey}/{model}[/transfer-from-{pretrained_on}[-{mode}]]/seed{seed}/checkpoint.pt
    {results}/evaluation/{survey}/{model}[/transfer-from-{pretrained_on}[-{mode}]]/seed{seed}/metrics.json

The ``frozen`` mode has no suffix: its paths are those of the runs made before modes existed.

Rules build their patterns from the same class, with wildcards as field values
(``Run("{survey}", "{model}", "{seed}")``), so the rules, evaluation, figures and tables cannot
disagree about a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# the area (top-level folder) each per-run file lives in
_AREA = {"checkpoint.pt": "models", "history.csv": "models"}


def _area(name: str) -> str:
    if name.startswith(("metrics", "predictions")):
        return "evaluation"
    return _AREA[name]


# How a transfer run is fine-tuned: 'frozen' keeps transfer.freeze as pre-trained (the paper's), 'finetune'
# trains every layer, 'random_frozen' freezes the same layers at a fresh seeded init (a control).
TRANSFER_MODES = ("frozen", "finetune", "random_frozen")
DEFAULT_MODE = "frozen"
MODE_LABELS = {"frozen": "", "finetune": "all layers fine-tuned", "random_frozen": "random frozen layers"}

_RUN_PATH = re.compile(r"(?P<survey>[^/]+)/(?P<model>[^/]+)"
                       r"(?:/transfer-from-(?P<pretrained_on>[^/]+?)(?:-(?P<mode>finetune|random_frozen))?)?"
                       r"/seed(?P<seed>\d+)/(?P<file>[^/]+)$")


def _mode(pretrained_on: str, mode: str) -> str:
    """A transfer run's mode ('frozen' unless said), '' for a scratch run."""
    if not pretrained_on:
        if mode:
            raise ValueError(f"a run trained from scratch has no transfer mode (got {mode!r})")
        return ""
    return mode or DEFAULT_MODE


def mode_suffix(mode: str) -> str:
    """The folder suffix of a transfer mode: none for 'frozen' (the paths of before modes)."""
    return "" if mode in ("", DEFAULT_MODE) else f"-{mode}"


@dataclass(frozen=True, order=True)
class Variant:
    """What a table row or a figure panel shows: a model trained one way, over all its seeds."""

    model: str
    survey: str  # the survey trained (or fine-tuned) and tested on
    pretrained_on: str = ""  # transfer: the survey of the network it was fine-tuned from
    mode: str = ""  # transfer: one of TRANSFER_MODES ('frozen' when not given); scratch: ''

    def __post_init__(self):
        object.__setattr__(self, "mode", _mode(self.pretrained_on, self.mode))

    @classmethod
    def from_row(cls, row) -> Variant:
        """The variant of a runs.csv or summary.csv row (tables without a mode column hold frozen transfer runs)."""
        pretrained_on, mode = (value if isinstance(value, str) else "" for value in (row["pretrained_on"],
                                                                                      row.get("mode", "")))
        return cls(row["model"], row["survey"], pretrained_on, mode if pretrained_on else "")

    @property
    def kind(self) -> str:
        return "transfer" if self.pretrained_on else "scratch"

    @property
    def setting(self) -> str:
        """'from scratch', 'transfer from NVSS', 'transfer from NVSS, all layers fine-tuned', ..."""
        if not self.pretrained_on:
            return "from scratch"
        return f"transfer from {self.pretrained_on}" + (f", {MODE_LABELS[self.mode]}" if MODE_LABELS.get(self.mode)
                                                        else "")

    @property
    def label(self) -> str:
        return f"{self.model}, {self.survey}" + (f" ({self.setting})" if self.pretrained_on else "")


@dataclass(frozen=True, order=True)
class Run:
    survey: str  # the survey the run is trained (or fine-tuned) and tested on
    model: str
    seed: int | str
    pretrained_on: str = ""  # transfer runs: the survey of the network it was fine-tuned from
    mode: str = ""  # transfer runs: one of TRANSFER_MODES ('frozen' when not given); scratch runs: ''

    def __post_init__(self):
        object.__setattr__(self, "mode", _mode(self.pretrained_on, self.mode))

    @property
    def variant(self) -> Variant:
        return Variant(self.model, self.survey, self.pretrained_on, self.mode)

    @property
    def kind(self) -> str:
        return self.variant.kind

    @property
    def folder(self) -> str:
        transfer = f"/transfer-from-{self.pretrained_on}{mode_suffix(self.mode)}" if self.pretrained_on else ""
        return f"{self.survey}/{self.model}{transfer}/seed{self.seed}"

    def file(self, results: str | Path, name: str) -> str:
        """``name`` is checkpoint.pt, history.csv, or an evaluation file: metrics.json, predictions.csv,
        or metrics_<split>.json / predictions_<split>.csv for an extra evaluation split."""
        return f"{results}/{_area(name)}/{self.folder}/{name}"

    def log(self, results: str | Path, stage: str) -> str:
        return f"{results}/logs/{stage}/{self.folder}.log"

    def pretrained(self) -> Run:
        """The run a transfer run starts from: the same model and seed, trained from scratch on its source."""
        return Run(self.pretrained_on, self.model, self.seed)

    @classmethod
    def from_path(cls, path: str | Path) -> Run:
        match = _RUN_PATH.search(Path(path).as_posix())
        if not match:
            raise ValueError(f"{path}: not a per-run file "
                             "({survey}/{model}/[transfer-from-{survey}[-{mode}]/]seed{N}/FILE)")
        return cls(match["survey"], match["model"], int(match["seed"]), match["pretrained_on"] or "",
                   match["mode"] or "")


def dataset(results: str | Path, survey: str) -> str:
    return f"{results}/datasets/{survey}.npz"


def manifest(results: str | Path, survey: str) -> str:
    return f"{results}/cutouts/{survey}/manifest.csv"


def sources(results: str | Path) -> str:
    return f"{results}/catalogue/sources.csv"


def classify(results: str | Path) -> str:
    """The folder of a classify study's outputs: classifications.csv, ood_check.csv, shards/ (docs/classify.md)."""
    return f"{results}/classify"


def table(results: str | Path, name: str) -> str:
    return f"{results}/tables/{name}"


def figure(results: str | Path, name: str, extension: str = "png") -> str:
    return f"{results}/figures/{name}.{extension}"
