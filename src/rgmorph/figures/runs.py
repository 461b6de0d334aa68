"""Grouping runs into variants (model, kind, test survey, and the survey and mode a transfer run started from)."""

from __future__ import annotations

import json
from pathlib import Path

from rgmorph.layout import Run, Variant


def variant_from_path(path: str | Path) -> tuple[Variant, int]:
    run = Run.from_path(path)
    return run.variant, int(run.seed)


def group_reports(paths) -> dict[Variant, list[tuple[int, dict, Path]]]:
    """metrics.json files grouped by variant (as evaluation recorded it), each group sorted by seed."""
    groups: dict[Variant, list] = {}
    for path in map(Path, paths):
        report = json.loads(path.read_text())
        run = report["run"]
        groups.setdefault(Variant.from_row(run), []).append(
            (int(run["seed"]), report, path))
    return {key: sorted(value, key=lambda item: item[0]) for key, value in sorted(groups.items(), key=_order)}


def group_paths(paths) -> dict[Variant, list[tuple[int, Path]]]:
    groups: dict[Variant, list] = {}
    for path in map(Path, paths):
        variant, seed = variant_from_path(path)
        groups.setdefault(variant, []).append((seed, path))
    return {key: sorted(value) for key, value in sorted(groups.items(), key=_order)}


_SURVEY_RANK = {"FIRST": 0, "NVSS": 1}


def _order(item):
    variant = item[0]
    return (variant.kind != "scratch", variant.model, _SURVEY_RANK.get(variant.survey, 2), variant.survey,
            variant.pretrained_on, variant.mode)


def row_key(variant: Variant) -> tuple[str, str, str]:
    """The grid row of a variant's panel: one per model and way of training (source survey and mode)."""
    return variant.model, variant.pretrained_on, variant.mode


def grid(variants) -> tuple[list, list[str]]:
    """Rows (``row_key``) and columns (test survey) for a panel per variant."""
    rows = list(dict.fromkeys(row_key(v) for v in variants))
    columns = list(dict.fromkeys(v.survey for v in variants))
    columns.sort(key=lambda s: (_SURVEY_RANK.get(s, 2), s))
    return rows, columns
