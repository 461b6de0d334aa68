"""Stage 1: read and validate a catalogue of labelled radio sources.

The output table has one row per source with the columns every later stage uses:
``name, ra_deg, dec_deg, class_name, label, split`` (``label`` is the class index in
``class_names`` order; ``split`` is ``train`` or ``test``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
OUTPUT_COLUMNS = ["name", "ra_deg", "dec_deg", "class_name", "label", "split"]


class CatalogueError(ValueError):
    """A catalogue that cannot be used as given; the message names the row or column."""


@dataclass
class CatalogueSpec:
    """Which columns hold what, which rows to keep and how labels map onto classes."""

    class_names: list[str]
    name_column: str = "name"
    ra_column: str = "ra"
    dec_column: str = "dec"
    label_column: str = "fr_class"
    split_column: str | None = "split"
    # label value as written in the file -> class name; identity when empty
    label_map: dict[str, str] = field(default_factory=dict)
    # column -> allowed values; rows outside are dropped before validation
    select: dict[str, list] = field(default_factory=dict)
    test_fraction: float = 0.3
    split_seed: int = 0
    duplicate_radius_arcsec: float = 1.0


def _row_label(frame: pd.DataFrame, index, name_column: str) -> str:
    # Row numbers as a spreadsheet shows them: header is line 1.
    return f"catalogue row {index + 2} ({frame.at[index, name_column]})"


def parse_angle(text, kind: str) -> float:
    """Parse RA or Dec given in degrees or sexagesimal ('07 45 42.13', '07:45:42.13', '+31 42 52.6')."""
    value = str(text).strip()
    if not value or value.lower() == "nan":
        raise ValueError("is empty")
    try:
        degrees = float(value)
    except ValueError:
        unit = u.hourangle if kind == "ra" else u.deg
        try:
            degrees = Angle(value, unit=unit).to_value(u.deg)
        except Exception as exc:  # astropy raises several types for bad strings
            raise ValueError(f"{value!r} is not an angle ({exc})") from None
    if kind == "ra" and not 0.0 <= degrees < 360.0:
        raise ValueError(f"{value!r} is out of range (RA must be in [0, 360) deg)")
    if kind == "dec" and not -90.0 <= degrees <= 90.0:
        raise ValueError(f"{value!r} is out of range (Dec must be in [-90, 90] deg)")
    return float(degrees)


def read_catalogue(path: str | Path, spec: CatalogueSpec) -> pd.DataFrame:
    """Read, select, validate and (if needed) split a catalogue; raise CatalogueError on bad input."""
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"catalogue {path} does not exist")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"catalogue {path} is not UTF-8 text ({exc}); re-save it as UTF-8 CSV") from None
    except pd.errors.EmptyDataError:
        raise CatalogueError(f"catalogue {path} is empty") from None
    required = [spec.name_column, spec.ra_column, spec.dec_column, spec.label_column]
    if spec.split_column:
        required.append(spec.split_column)
    missing = [column for column in required if column not in raw.columns]
    if missing:
        hint = " (is it comma-separated?)" if len(raw.columns) == 1 else ""
        raise CatalogueError(
            f"catalogue {path} lacks column(s) {missing}{hint}; it has {list(raw.columns)}. "
            "Set catalogue.columns in the config to the names your file uses."
        )
    if raw.empty:
        raise CatalogueError(f"catalogue {path} has a header but no rows")

    selected = raw
    for column, allowed in spec.select.items():
        if column not in raw.columns:
            raise CatalogueError(f"catalogue {path}: select uses column {column!r}, which the file lacks")
        selected = selected[selected[column].isin([str(value) for value in allowed])]
    if selected.empty:
        raise CatalogueError(f"catalogue {path}: no rows left after selection {spec.select}")

    rows = []
    for index in selected.index:
        where = _row_label(raw, index, spec.name_column)
        name = raw.at[index, spec.name_column].strip()
        if not name:
            raise CatalogueError(f"catalogue row {index + 2}: the name is empty")
        try:
            ra = parse_angle(raw.at[index, spec.ra_column], "ra")
        except ValueError as exc:
            raise CatalogueError(f"{where}: ra {exc}") from None
        try:
            dec = parse_angle(raw.at[index, spec.dec_column], "dec")
        except ValueError as exc:
            raise CatalogueError(f"{where}: dec {exc}") from None
        value = raw.at[index, spec.label_column].strip()
        class_name = spec.label_map.get(value, value)
        if class_name not in spec.class_names:
            known = sorted(spec.label_map) or spec.class_names
            raise CatalogueError(f"{where}: label {value!r} is not one of {known}")
        split = raw.at[index, spec.split_column].strip().lower() if spec.split_column else ""
        if spec.split_column and split not in SPLITS:
            raise CatalogueError(f"{where}: split {split!r} is not one of {list(SPLITS)}")
        rows.append((index, name, ra, dec, class_name, spec.class_names.index(class_name), split))

    table = pd.DataFrame(rows, columns=["row", *OUTPUT_COLUMNS]).set_index("row")
    _reject_duplicates(raw, table, spec)
    if not spec.split_column:
        table["split"] = stratified_split(table["label"].to_numpy(), spec.test_fraction, spec.split_seed)
        log.info("no split column: made a stratified %.0f%% test split with seed %d", 100 * spec.test_fraction, spec.split_seed)
    for split in SPLITS:
        if not (table["split"] == split).any():
            raise CatalogueError(f"catalogue {path}: no source in the {split} split")
    return table.reset_index(drop=True)


def _reject_duplicates(raw: pd.DataFrame, table: pd.DataFrame, spec: CatalogueSpec) -> None:
    repeated = table["name"].duplicated(keep=False)
    if repeated.any():
        first, second = table.index[repeated][:2]
        raise CatalogueError(
            f"{_row_label(raw, second, spec.name_column)}: duplicate name, also at catalogue row {first + 2}"
        )
    coords = SkyCoord(table["ra_deg"].to_numpy() * u.deg, table["dec_deg"].to_numpy() * u.deg)
    if len(coords) < 2:
        return
    partner, separation, _ = coords.match_to_catalog_sky(coords, nthneighbor=2)
    close = np.flatnonzero(separation.arcsec <= spec.duplicate_radius_arcsec)
    if close.size:
        # Exact duplicates may match themselves; the other member is then also in `close`.
        first = close[0]
        other = partner[first] if partner[first] != first else close[1]
        first, second = sorted((first, other))
        raise CatalogueError(
            f"{_row_label(raw, table.index[second], spec.name_column)}: position within "
            f"{spec.duplicate_radius_arcsec} arcsec of {_row_label(raw, table.index[first], spec.name_column)}; "
            "remove one of the duplicates"
        )


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Assign 'train'/'test' so that each class keeps the same test fraction (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        split[members[: int(round(test_fraction * len(members)))]] = "test"
    return split


def spec_from_config(catalogue_config: dict, class_names: list[str]) -> CatalogueSpec:
    columns = catalogue_config.get("columns", {})
    split_config = catalogue_config.get("split", {})
    return CatalogueSpec(
        class_names=list(class_names),
        name_column=columns.get("name", "name"),
        ra_column=columns.get("ra", "ra"),
        dec_column=columns.get("dec", "dec"),
        label_column=columns.get("label", "fr_class"),
        split_column=columns.get("split"),
        label_map=dict(catalogue_config.get("label_map", {})),
        select=dict(catalogue_config.get("select", {})),
        test_fraction=split_config.get("test_fraction", 0.3),
        split_seed=split_config.get("seed", 0),
        duplicate_radius_arcsec=catalogue_config.get("duplicate_radius_arcsec", 1.0),
    )
