"""Which run a file belongs to, and grouping runs into variants (model, mode, training and test survey)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rgmorph.evaluate import run_mode


@dataclass(frozen=True, order=True)
class Variant:
    model: str
    survey: str  # test survey
    mode: str = "scratch"
    source: str = ""  # the survey the model was pre-trained on (transfer) or trained on (cross-survey)

    @property
    def label(self) -> str:
        if self.mode == "transfer":
            return f"{self.model}, {self.survey} (transfer from {self.source})" if self.source else \
                f"{self.model}, {self.survey} (transfer)"
        if self.mode == "cross-survey":
            return f"{self.model}, trained on {self.source}, tested on {self.survey}"
        return f"{self.model}, {self.survey}"


def _seed_index(parts: tuple[str, ...]) -> int:
    for index in range(len(parts) - 1, -1, -1):
        if re.fullmatch(r"seed\d+", parts[index]):
            return index
    raise ValueError(f"no seed<N> folder in {'/'.join(parts)}")


def variant_from_path(path: str | Path) -> tuple[Variant, int]:
    """(variant, seed) from .../{survey}/{model}[/transfer-from-{source}]/seed{seed}/file."""
    parts = Path(path).parts
    index = _seed_index(parts)
    seed = int(parts[index].removeprefix("seed"))
    above = parts[index - 1]
    if above.startswith("transfer-from-"):
        return Variant(parts[index - 2], parts[index - 3], "transfer", above.removeprefix("transfer-from-")), seed
    return Variant(above, parts[index - 2]), seed


def variant_from_report(report: dict, path: str | Path | None = None) -> tuple[Variant, int]:
    run = report["run"]
    mode, source = run_mode(run, path)
    if mode == "cross-survey" and not source:
        source = run.get("trained_on", "")
    return Variant(run["model"], run["survey"], mode, source), int(run["seed"])


def group_reports(paths) -> dict[Variant, list[tuple[int, dict, Path]]]:
    """metrics.json files grouped by variant, each group sorted by seed."""
    groups: dict[Variant, list] = {}
    for path in map(Path, paths):
        report = json.loads(path.read_text())
        variant, seed = variant_from_report(report, path)
        groups.setdefault(variant, []).append((seed, report, path))
    return {key: sorted(value, key=lambda item: item[0]) for key, value in sorted(groups.items(), key=_order)}


def group_paths(paths) -> dict[Variant, list[tuple[int, Path]]]:
    groups: dict[Variant, list] = {}
    for path in map(Path, paths):
        variant, seed = variant_from_path(path)
        groups.setdefault(variant, []).append((seed, path))
    return {key: sorted(value) for key, value in sorted(groups.items(), key=_order)}


_MODE_RANK = {"scratch": 0, "transfer": 1, "cross-survey": 2}
_SURVEY_RANK = {"FIRST": 0, "NVSS": 1}


def _order(item):
    variant = item[0]
    return (_MODE_RANK.get(variant.mode, 3), variant.model, _SURVEY_RANK.get(variant.survey, 2), variant.survey,
            variant.source)


def grid(variants) -> tuple[list, list[str]]:
    """Rows (model, mode, source) and columns (test survey) for a panel per variant."""
    rows = list(dict.fromkeys((v.model, v.mode, v.source) for v in variants))
    columns = list(dict.fromkeys(v.survey for v in variants))
    columns.sort(key=lambda s: (_SURVEY_RANK.get(s, 2), s))
    return rows, columns
