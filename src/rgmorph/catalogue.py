"""Stage 1: read and validate a catalogue of labelled radio sources.

The output table has one row per source with the columns every later stage uses:
``name, ra_deg, dec_deg, class_name, label, split`` (``label`` is the class index in
``class_names`` order; ``split`` is ``train`` or ``test``).
"""

from __future__ import annotations

import io
import logging
import warnings
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
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # astropy only warns about e.g. 61 minutes: that is a typo here
                degrees = Angle(value, unit=unit).to_value(u.deg)
        except Exception as exc:  # astropy raises several types for bad strings
            raise ValueError(f"{value!r} is not an angle ({exc})") from None
    if kind == "ra" and not 0.0 <= degrees < 360.0:
        raise ValueError(f"{value!r} is out of range (RA must be in [0, 360) deg)")
    if kind == "dec" and not -90.0 <= degrees <= 90.0:
        raise ValueError(f"{value!r} is out of range (Dec must be in [-90, 90] deg)")
    return float(degrees)


# Listing every bad row at once saves a fix-and-rerun cycle per row; this many are shown.
MAX_LISTED_PROBLEMS = 20


def _raise_problems(path: Path, problems: list[str], advice: str) -> None:
    if not problems:
        return
    listing = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
    if len(problems) > MAX_LISTED_PROBLEMS:
        listing += f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more"
    raise CatalogueError(f"catalogue {path}: {len(problems)} problem(s):\n  {listing}\n{advice}")


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise CatalogueError(f"catalogue {path} is empty; it needs a header line and one row per source")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CatalogueError(f"catalogue {path} is UTF-16 text; re-save it as UTF-8 CSV (e.g. 'CSV UTF-8' in a spreadsheet)")
    try:
        return data.decode("utf-8-sig")  # -sig: a spreadsheet's byte-order mark must not rename the first column
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CatalogueError(
            f"catalogue {path} line {line} is not UTF-8 text (byte {data[exc.start:exc.start + 1]!r}); "
            "re-save the file as UTF-8 CSV (e.g. 'CSV UTF-8' in a spreadsheet)"
        ) from None


def _delimiter_hint(header: str) -> str:
    counts = {name: header.count(char) for name, char in (("semicolon", ";"), ("tab", "\t"), ("'|'", "|"))}
    name, count = max(counts.items(), key=lambda item: item[1])
    if count and "," not in header:
        return f" The header looks {name}-separated: save the file comma-separated."
    return ""


def read_catalogue(path: str | Path, spec: CatalogueSpec) -> pd.DataFrame:
    """Read, select, validate and (if needed) split a catalogue; raise CatalogueError on bad input.

    Every problem of the same kind is listed in one error with its spreadsheet row number
    (the header is row 1), so a hand-typed file can be fixed in one go.
    """
    path = Path(path)
    if not path.is_file():
        raise CatalogueError(f"catalogue {path} does not exist; set catalogue.path in the config")
    text = _read_text(path)
    try:
        # Blank lines are kept (and dropped below) so that row numbers stay the file's line numbers.
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise CatalogueError(f"catalogue {path} is empty; it needs a header line and one row per source") from None
    except pd.errors.ParserError as exc:
        raise CatalogueError(
            f"catalogue {path} is not a well-formed CSV file ({exc}); quote fields that hold commas, "
            "e.g. \"3C 31, core\""
        ) from None
    raw.columns = [str(column).strip() for column in raw.columns]
    raw = raw.fillna("")
    raw = raw[~(raw.apply(lambda column: column.str.strip()) == "").all(axis=1)]
    required = [spec.name_column, spec.ra_column, spec.dec_column, spec.label_column]
    if spec.split_column:
        required.append(spec.split_column)
    missing = [column for column in required if column not in raw.columns]
    if missing:
        hint = _delimiter_hint(text.splitlines()[0]) if len(raw.columns) == 1 else ""
        raise CatalogueError(
            f"catalogue {path} lacks column(s) {missing}; it has {list(raw.columns)}.{hint} "
            "Otherwise set catalogue.columns in the config to the names your file uses."
        )
    if raw.empty:
        raise CatalogueError(f"catalogue {path} has a header but no rows")

    selected = raw
    for column, allowed in spec.select.items():
        if column not in raw.columns:
            raise CatalogueError(f"catalogue {path}: catalogue.select uses column {column!r}, which the file lacks; "
                                 f"it has {list(raw.columns)}")
        selected = selected[selected[column].str.strip().isin([str(value) for value in allowed])]
    if selected.empty:
        raise CatalogueError(f"catalogue {path}: no rows left after catalogue.select {spec.select}")

    rows, problems = [], []
    known_labels = sorted(spec.label_map) or spec.class_names
    for index in selected.index:
        where = _row_label(raw, index, spec.name_column)
        found = []
        name = raw.at[index, spec.name_column].strip()
        if not name:
            found.append(f"catalogue row {index + 2}: the name is empty")
        try:
            ra = parse_angle(raw.at[index, spec.ra_column], "ra")
        except ValueError as exc:
            found.append(f"{where}: ra {exc}")
        try:
            dec = parse_angle(raw.at[index, spec.dec_column], "dec")
        except ValueError as exc:
            found.append(f"{where}: dec {exc}")
        value = raw.at[index, spec.label_column].strip()
        class_name = spec.label_map.get(value, value)
        if class_name not in spec.class_names:
            found.append(f"{where}: label {value!r} is not one of {known_labels}")
        split = raw.at[index, spec.split_column].strip().lower() if spec.split_column else ""
        if spec.split_column and split not in SPLITS:
            found.append(f"{where}: split {split!r} is not one of {list(SPLITS)}")
        problems.extend(found)
        if not found:
            rows.append((index, name, ra, dec, class_name, spec.class_names.index(class_name), split))
    _raise_problems(path, problems, "Fix these rows (or leave them out with catalogue.select); labels can be "
                                    "mapped onto class names with catalogue.label_map.")

    table = pd.DataFrame(rows, columns=["row", *OUTPUT_COLUMNS]).set_index("row")
    _raise_problems(path, _duplicates(raw, table, spec),
                    "Remove one row of each duplicate pair (or, for close but distinct sources, lower "
                    "catalogue.duplicate_radius_arcsec).")
    if not spec.split_column:
        table["split"] = stratified_split(table["label"].to_numpy(), spec.test_fraction, spec.split_seed)
        log.info("no split column: made a stratified %.0f%% test split with seed %d", 100 * spec.test_fraction, spec.split_seed)
    for split in SPLITS:
        if not (table["split"] == split).any():
            raise CatalogueError(f"catalogue {path}: no source in the {split} split; every run needs both train and test sources")
    return table.reset_index(drop=True)


def _duplicates(raw: pd.DataFrame, table: pd.DataFrame, spec: CatalogueSpec) -> list[str]:
    """One line per row that repeats an earlier row's name or lies within the duplicate radius of it."""
    problems = []
    first_row = {}
    for index, name in table["name"].items():
        if name in first_row:
            problems.append(f"{_row_label(raw, index, spec.name_column)}: duplicate name, also at catalogue row {first_row[name] + 2}")
        else:
            first_row[name] = index
    if len(table) < 2:
        return problems
    coords = SkyCoord(table["ra_deg"].to_numpy() * u.deg, table["dec_deg"].to_numpy() * u.deg)
    # All pairs within the radius (a 2nd-neighbour match misses triples and can pair a row with itself).
    first, second, separation, _ = coords.search_around_sky(coords, spec.duplicate_radius_arcsec * u.arcsec)
    for a, b, sep in sorted(zip(first.tolist(), second.tolist(), separation.arcsec.tolist())):
        if a < b:
            problems.append(
                f"{_row_label(raw, table.index[b], spec.name_column)}: position within "
                f"{spec.duplicate_radius_arcsec} arcsec of {_row_label(raw, table.index[a], spec.name_column)} "
                f"({sep:.2f} arcsec apart)"
            )
    return problems


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
