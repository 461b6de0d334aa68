"""Train/test neighbours: sources in different splits that are one object, or share most of a cutout.

A catalogue can list one radio galaxy twice under two names (FRDEEP has NGC 5782 in train and
SDSS J145555.27+115141.4 in test, 3.6 arcsec apart), and two distinct sources can sit so close
that their cutouts show the same sky. Either way a test image is partly seen in training. Here
every train/test pair closer than ``same_source_arcsec``, or whose cutout fields in some survey
overlap by more than ``max_field_overlap`` of their area, is found and (by ``action``) resolved:

- ``drop_test``: the test member of each pair is left out (the default);
- ``move_to_train`` / ``move_to_test``: each group of linked sources goes wholly into one split
  (a group, not a pair: moving one member must not make a new cross-split pair);
- ``keep``: only reported.

A dataset's own validation split is checked too: every train/validation, validation/test and
train/test pair, ``train_name`` naming the member in the split nearer training and ``test_name`` the
other (``splits`` says which, e.g. ``validation/test``; that column only where a validation split
exists); ``drop_test`` drops the ``test_name`` member. Sources in other splits (e.g. ``uncertain``)
and sources without a position are neither checked nor moved (the latter is logged).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from rgmorph.errors import CatalogueError
from rgmorph.files import write_csv_atomic

log = logging.getLogger(__name__)

ACTIONS = ("drop_test", "move_to_train", "move_to_test", "keep")
# SkyView's default pixel scales (arcsec) of the surveys this project uses, by SkyView name
KNOWN_PIXEL_SCALE_ARCSEC = {"VLA FIRST (1.4 GHz)": 1.8, "NVSS": 15.0}
REPORT_COLUMNS = ["train_name", "test_name", "separation_arcsec", "same_source"]
VALIDATION = "validation"  # a dataset's own validation split (rgmorph.catalogue.SPLIT_VALUES)
CHECKED_SPLITS = ("train", VALIDATION, "test")  # in this order: a pair's first member is the one nearer training


@dataclass(frozen=True)
class NeighbourSettings:
    same_source_arcsec: float = 30.0
    max_field_overlap: float | None = 0.5  # None: no field-overlap check
    action: str = "drop_test"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise CatalogueError(f"config key catalogue.neighbours.action: {self.action!r} is not one of {list(ACTIONS)}")

    @classmethod
    def from_config(cls, config: dict | None) -> NeighbourSettings:
        config = config or {}
        return cls(config.get("same_source_arcsec", 30.0), config.get("max_field_overlap", 0.5),
                   config.get("action", "drop_test"))


def survey_fields(surveys: dict, neighbours_config: dict | None = None) -> dict[str, float]:
    """Cutout side in arcsec per survey key (pixels x pixel scale); {} when the overlap check is off."""
    if NeighbourSettings.from_config(neighbours_config).max_field_overlap is None:
        return {}
    fields = {}
    for key, survey in surveys.items():
        scale = survey.get("pixel_scale_arcsec") or KNOWN_PIXEL_SCALE_ARCSEC.get(survey.get("skyview_name"))
        if not scale:
            raise CatalogueError(
                f"config key surveys.{key}.pixel_scale_arcsec: not set, and the pixel scale of "
                f"{survey.get('skyview_name')!r} is not known here; the field-overlap check "
                "(catalogue.neighbours.max_field_overlap) needs it. Set it, or set max_field_overlap: null."
            )
        fields[key] = float(survey.get("pixels", 150)) * float(scale)
    return fields


def field_overlap(first: SkyCoord, second: SkyCoord, field_arcsec: float) -> np.ndarray:
    """Shared fraction of the area of two north-up square fields of side ``field_arcsec`` centred on the positions."""
    east, north = first.spherical_offsets_to(second)
    side = field_arcsec
    return (np.clip(1 - np.abs(east.to_value(u.arcsec)) / side, 0, None)
            * np.clip(1 - np.abs(north.to_value(u.arcsec)) / side, 0, None))


def _search_radius(settings: NeighbourSettings, fields: dict[str, float]) -> float:
    """No pair beyond this is linked: (1 - x)(1 - y) > f, with offsets x, y in units of the side, needs
    both x, y < 1 - f, so a separation below sqrt(2) (1 - f) sides; 1% spare for the sphere."""
    radius = settings.same_source_arcsec
    if settings.max_field_overlap is not None:
        for side in fields.values():
            radius = max(radius, 1.01 * np.sqrt(2) * side * (1 - settings.max_field_overlap))
    return radius


def linked_pairs(sources: pd.DataFrame, settings: NeighbourSettings, fields: dict[str, float]) -> pd.DataFrame:
    """Every pair (a < b, positional indices of ``sources``) that is one source or shares a field; any splits."""
    columns = ["a", "b", "separation_arcsec", "same_source", *[f"overlap_{key}" for key in fields]]
    if len(sources) < 2:
        return pd.DataFrame(columns=columns)
    coords = SkyCoord(sources["ra_deg"].to_numpy() * u.deg, sources["dec_deg"].to_numpy() * u.deg)
    first, second, separation, _ = coords.search_around_sky(coords, _search_radius(settings, fields) * u.arcsec)
    keep = first < second
    pairs = pd.DataFrame({"a": first[keep], "b": second[keep], "separation_arcsec": separation.arcsec[keep]})
    pairs["same_source"] = pairs["separation_arcsec"] < settings.same_source_arcsec
    linked = pairs["same_source"].to_numpy().copy()
    for key, side in fields.items():
        pairs[f"overlap_{key}"] = field_overlap(coords[pairs["a"].to_numpy()], coords[pairs["b"].to_numpy()], side)
        if settings.max_field_overlap is not None:
            linked |= pairs[f"overlap_{key}"].to_numpy() > settings.max_field_overlap
    return pairs[linked].sort_values(["a", "b"]).reset_index(drop=True)[columns]


def resolve_neighbours(sources: pd.DataFrame, settings: NeighbourSettings,
                       fields: dict[str, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sources after the action, one report row per train/test pair with what was done)."""
    sources = sources.reset_index(drop=True)
    checked = sources[sources["split"].isin(CHECKED_SPLITS) & sources["ra_deg"].notna()].reset_index()
    _log_unchecked(sources, checked)
    pairs = linked_pairs(checked, settings, fields)
    split = checked["split"].to_numpy()
    rank = np.array([CHECKED_SPLITS.index(value) for value in split], dtype=int)
    first, second = pairs["a"].to_numpy(int), pairs["b"].to_numpy(int)  # int also when there is no pair
    cross = pairs[split[first] != split[second]].copy()
    first, second = cross["a"].to_numpy(int), cross["b"].to_numpy(int)
    names, rows = checked["name"].to_numpy(), checked["index"].to_numpy()
    train_first = rank[first] < rank[second]
    train, test = np.where(train_first, first, second), np.where(train_first, second, first)
    report = cross.drop(columns=["a", "b"]).assign(train_name=names[train], test_name=names[test])
    extra = ["splits"] if (sources["split"] == VALIDATION).any() else []
    report = report.assign(splits=[f"{split[a]}/{split[b]}" for a, b in zip(train, test)])
    report = report[[*REPORT_COLUMNS, *extra, *[c for c in report.columns if c.startswith("overlap_")]]]
    report = report.reset_index(drop=True)
    if settings.action == "keep":
        return sources, report.assign(action="kept")
    if settings.action == "drop_test":
        dropped = sources.drop(index=rows[np.unique(test)])
        return dropped.reset_index(drop=True), report.assign(
            action=[f"dropped {names[k]} ({split[k]})" for k in test])
    target = settings.action.removeprefix("move_to_")
    moved = rows[_mixed_groups(len(checked), pairs, split)]
    changed = moved[sources.loc[moved, "split"].to_numpy() != target]
    sources.loc[changed, "split"] = target
    mover = test if target == "train" else train
    return sources, report.assign(action=[f"moved {name} to {target}" for name in names[mover]])


def _log_unchecked(sources: pd.DataFrame, checked: pd.DataFrame) -> None:
    unplaced = sources["split"].isin(CHECKED_SPLITS) & sources["ra_deg"].isna()
    if unplaced.any():
        log.warning("neighbour check skipped for %d of %d sources: they have no position (catalogue columns ra/dec "
                    "null, or image folders without a position pattern)", int(unplaced.sum()), len(sources))


def _mixed_groups(count: int, pairs: pd.DataFrame, split: np.ndarray) -> np.ndarray:
    """Positions of the sources whose group of linked sources holds both train and test members."""
    graph = coo_matrix((np.ones(len(pairs)), (pairs["a"].to_numpy(int), pairs["b"].to_numpy(int))), shape=(count, count))
    _, group = connected_components(graph, directed=False)
    frame = pd.DataFrame({"group": group, "split": split})
    mixed = frame.groupby("group")["split"].nunique() > 1
    return np.flatnonzero(frame["group"].map(mixed).to_numpy())


# ------------------------------------------------- the referee's table (tables/neighbours.csv)

OUTCOMES = ("dropped", "moved", "kept")


def _linked_by(row: pd.Series, settings: NeighbourSettings, surveys: list[str]) -> str:
    """Why a pair was flagged, in words: the separation test and each survey whose fields overlap too much."""
    reasons = [f"separation < {settings.same_source_arcsec:g} arcsec"] if row["same_source"] else []
    if settings.max_field_overlap is not None:
        reasons += [f"{survey} field overlap > {settings.max_field_overlap:g}" for survey in surveys
                    if row[f"overlap_{survey}"] > settings.max_field_overlap]
    return "; ".join(reasons)


def neighbours_table(pairs: pd.DataFrame, settings: NeighbourSettings) -> pd.DataFrame:
    """The catalogue stage's pair report with why each pair was flagged and what was done, as one word
    (``action``: dropped/moved/kept) and in full (``detail``: which source went where)."""
    surveys = [column.removeprefix("overlap_") for column in pairs.columns if column.startswith("overlap_")]
    table = pairs.rename(columns={"action": "detail"})
    table["same_source"] = table["same_source"].astype(str).str.lower() == "true"  # read back from CSV as text
    table["linked_by"] = [_linked_by(row, settings, surveys) for _, row in table.iterrows()]
    table["action"] = table["detail"].astype(str).str.split().str[0]
    unknown = sorted(set(table["action"]) - set(OUTCOMES))
    if unknown:
        raise ValueError(f"neighbour report: action(s) {unknown} are not one of {list(OUTCOMES)}")
    columns = [*REPORT_COLUMNS, *[column for column in ["splits"] if column in table.columns],
               *[f"overlap_{survey}" for survey in surveys], "linked_by", "action", "detail"]
    return table[columns]


def write_neighbours_table(pairs_path: str | Path, neighbours_config: dict | None,
                           table_path: str | Path) -> pd.DataFrame:
    """tables/neighbours.csv from catalogue/neighbours.csv (a header alone when no pair was found)."""
    pairs = pd.read_csv(pairs_path, dtype={"train_name": str, "test_name": str, "action": str})
    table = neighbours_table(pairs, NeighbourSettings.from_config(neighbours_config))
    write_csv_atomic(table_path, table, float_format="%.4f")
    return table
