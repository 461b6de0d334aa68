"""Stage 1: read and validate one or several catalogues of labelled radio sources.

The output table has one row per source with the columns every later stage uses:
``name, ra_deg, dec_deg, class_name, label, split`` (``label`` is the class index in
``class_names`` order; ``split`` is ``train``, ``test``, ``validation`` (a dataset's own
validation split, written ``valid``, ``val`` or ``validation``) or a config-assigned extra split
such as ``uncertain``), then ``catalogue`` (which input it came from) and any ``carry`` columns.
A catalogue is a CSV file or a folder of images (``<split>/<class>/<image>``, rgmorph.folders);
without position columns (``columns.ra``/``dec`` null, or a folder without a position pattern)
``ra_deg``/``dec_deg`` are empty and the position-based steps (duplicates by position, merge,
neighbours) say that they are skipped.
Several catalogues are merged by position (rgmorph.crossmatch); train/test pairs that are one
object or share a cutout field are then resolved (rgmorph.neighbours). ``write_catalogue_stage``
writes sources.csv, merge.json and neighbours.csv.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import Angle, SkyCoord

from rgmorph import crossmatch, folders, neighbours
from rgmorph.errors import CatalogueError
from rgmorph.files import write_csv_atomic, write_json_atomic

log = logging.getLogger(__name__)

SPLITS = ("train", "test")  # every study needs both
VALIDATION = neighbours.VALIDATION
# split values as datasets write them -> the split; 'valid' and 'val' are a dataset's own validation split
SPLIT_VALUES = {"train": "train", "test": "test", VALIDATION: VALIDATION, "valid": VALIDATION, "val": VALIDATION}
OUTPUT_COLUMNS = ["name", "ra_deg", "dec_deg", "class_name", "label", "split"]
# columns the stage writes itself: a carried column of the same name would overwrite one
RESERVED_COLUMNS = (*OUTPUT_COLUMNS, "catalogue")


def split_value(text: str) -> str | None:
    """The split a catalogue's split value names ('valid' -> 'validation'), None if it names none."""
    return SPLIT_VALUES.get(str(text).strip().lower())


@dataclass
class CatalogueSpec:
    """Which columns hold what, which rows to keep and how labels map onto classes."""

    class_names: list[str]
    name_column: str = "name"
    ra_column: str | None = "ra"  # None (with dec_column): the catalogue has no positions
    dec_column: str | None = "dec"
    label_column: str = "fr_class"
    split_column: str | None = "split"
    # label value as written in the file -> class name; identity when empty
    label_map: dict[str, str] = field(default_factory=dict)
    # column -> allowed values; rows outside are dropped before validation
    select: dict[str, list] = field(default_factory=dict)
    test_fraction: float = 0.3
    split_seed: int = 0
    duplicate_radius_arcsec: float = 1.0
    # every selected row goes into this split whatever the file says (e.g. 'uncertain': kept out of train/test)
    assign_split: str | None = None
    carry: list[str] = field(default_factory=list)  # extra columns copied as they are into the output
    require_both_splits: bool = True  # off when this catalogue is one of several merged ones
    folders: str | None = None  # a folder of images (rgmorph.folders) instead of a CSV file
    pattern: str | None = None  # the folder's file-name pattern, e.g. '{ra}_{dec}_{label}.png'

    @property
    def has_positions(self) -> bool:
        return bool(self.ra_column and self.dec_column)


def _row_label(frame: pd.DataFrame, index, name_column: str) -> str:
    if frame.attrs.get("folders"):  # a folder's row is its file
        return f"file {frame.at[index, 'file']}"
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
    path = Path(spec.folders or path)
    raw, spec = _read_folders(spec) if spec.folders else (_read_table(path, spec), spec)
    _check_carry(path, spec)
    selected = _select(path, raw, spec)
    table = _parse_rows(path, raw, selected, spec)
    _raise_problems(path, _duplicates(raw, table, spec),
                    "Remove one row of each duplicate pair (or, for close but distinct sources, lower "
                    "catalogue.duplicate_radius_arcsec).")
    if not spec.split_column and not spec.assign_split:
        table["split"] = stratified_split(table["label"].to_numpy(), spec.test_fraction, spec.split_seed)
        log.info("no split column: made a stratified %.0f%% test split with seed %d", 100 * spec.test_fraction, spec.split_seed)
    for column in spec.carry:
        table[column] = raw.loc[table.index, column].str.strip()
    if spec.require_both_splits:
        require_both_splits(table, f"catalogue {path}")
    return table.reset_index(drop=True)


def _read_folders(spec: CatalogueSpec) -> tuple[pd.DataFrame, CatalogueSpec]:
    """A folder's rows (rgmorph.folders) and the spec that reads them: its own columns, its file column
    and pattern fields carried, no split column without split folders, positions only from a pattern."""
    try:
        raw = folders.read_folders(spec.folders, spec.pattern)
    except folders.FolderError as exc:
        raise CatalogueError(str(exc)) from None
    raw.attrs["folders"] = True
    positions = folders.has_positions(spec.pattern)
    extra = [column for column in raw.columns if column not in ("name", "ra", "dec", "label", "split")]
    spec = dataclasses.replace(
        spec, name_column="name", ra_column="ra" if positions else None, dec_column="dec" if positions else None,
        label_column="label", split_column="split" if (raw["split"] != "").any() else None,
        carry=list(dict.fromkeys([*extra, *spec.carry])))
    return raw, spec


def _check_carry(path: Path, spec: CatalogueSpec) -> None:
    clashes = [column for column in spec.carry if column in RESERVED_COLUMNS]
    if clashes:
        raise CatalogueError(f"catalogue {path}: carry names column(s) {clashes}, which sources.csv holds already "
                             f"({list(RESERVED_COLUMNS)}); rename them in the file (e.g. {clashes[0]}_original)")


def require_both_splits(table: pd.DataFrame, where: str) -> None:
    for split in SPLITS:
        if not (table["split"] == split).any():
            raise CatalogueError(f"{where}: no source in the {split} split; every run needs both train and test sources")


def _read_table(path: Path, spec: CatalogueSpec) -> pd.DataFrame:
    """The file as strings, blank rows dropped (row numbers stay the file's), required columns checked."""
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
    required = [spec.name_column, *([spec.ra_column, spec.dec_column] if spec.has_positions else []),
                spec.label_column]
    if spec.split_column and not spec.assign_split:
        required.append(spec.split_column)
    missing = [column for column in [*required, *spec.carry] if column not in raw.columns]
    if missing:
        hint = _delimiter_hint(text.splitlines()[0]) if len(raw.columns) == 1 else ""
        raise CatalogueError(
            f"catalogue {path} lacks column(s) {missing}; it has {list(raw.columns)}.{hint} "
            "Otherwise set catalogue.columns in the config to the names your file uses."
        )
    if raw.empty:
        raise CatalogueError(f"catalogue {path} has a header but no rows")
    return raw


def _select(path: Path, raw: pd.DataFrame, spec: CatalogueSpec) -> pd.DataFrame:
    selected = raw
    for column, allowed in spec.select.items():
        if column not in raw.columns:
            raise CatalogueError(f"catalogue {path}: catalogue.select uses column {column!r}, which the file lacks; "
                                 f"it has {list(raw.columns)}")
        selected = selected[selected[column].str.strip().isin([str(value) for value in allowed])]
    if selected.empty:
        raise CatalogueError(f"catalogue {path}: no rows left after catalogue.select {spec.select}")
    return selected


def _parse_rows(path: Path, raw: pd.DataFrame, selected: pd.DataFrame, spec: CatalogueSpec) -> pd.DataFrame:
    """One validated output row per selected row (indexed by the raw row); every bad row listed at once."""
    rows, problems = [], []
    for index in selected.index:
        found, row = _parse_row(raw, index, spec)
        problems.extend(found)
        if not found:
            rows.append((index, *row))
    _raise_problems(path, problems, "Fix these rows (or leave them out with catalogue.select); labels can be "
                                    "mapped onto class names with catalogue.label_map.")
    return pd.DataFrame(rows, columns=["row", *OUTPUT_COLUMNS]).set_index("row")


def _parse_row(raw: pd.DataFrame, index, spec: CatalogueSpec) -> tuple[list[str], tuple]:
    where = _row_label(raw, index, spec.name_column)
    found, ra, dec = [], np.nan, np.nan
    name = raw.at[index, spec.name_column].strip()
    if not name:
        found.append(f"catalogue row {index + 2}: the name is empty")
    for kind, column in (("ra", spec.ra_column), ("dec", spec.dec_column)) if spec.has_positions else ():
        try:
            angle = parse_angle(raw.at[index, column], kind)
        except ValueError as exc:
            found.append(f"{where}: {kind} {exc}")
        else:
            ra, dec = (angle, dec) if kind == "ra" else (ra, angle)
    value = raw.at[index, spec.label_column].strip()
    class_name = spec.label_map.get(value, value)
    if class_name not in spec.class_names:
        found.append(f"{where}: label {value!r} is not one of {sorted(spec.label_map) or spec.class_names}")
    if spec.assign_split:
        split = split_value(spec.assign_split) or spec.assign_split
    else:
        written = raw.at[index, spec.split_column].strip() if spec.split_column else ""
        split = split_value(written) or ""
        if spec.split_column and not split:
            found.append(f"{where}: split {written!r} is not one of {list(SPLIT_VALUES)} "
                         f"(valid, val and validation are the validation split)")
    label = spec.class_names.index(class_name) if class_name in spec.class_names else -1
    return found, (name, ra, dec, class_name, label, split)


def _duplicates(raw: pd.DataFrame, table: pd.DataFrame, spec: CatalogueSpec) -> list[str]:
    """One line per row that repeats an earlier row's name or lies within the duplicate radius of it."""
    problems = []
    first_row = {}
    for index, name in table["name"].items():
        if name in first_row:
            problems.append(f"{_row_label(raw, index, spec.name_column)}: duplicate name, also at catalogue row {first_row[name] + 2}")
        else:
            first_row[name] = index
    table = table[table["ra_deg"].notna()]  # no position, no duplicate by position
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


def spec_from_config(catalogue_config: dict, class_names: list[str], require_both_splits: bool = True) -> CatalogueSpec:
    """The spec of one catalogue: the ``catalogue`` config section, or one entry of its ``sources`` list."""
    columns = catalogue_config.get("columns", {})
    split_config = catalogue_config.get("split", {})
    folder = catalogue_config.get("folders") or {}
    return CatalogueSpec(
        class_names=list(class_names),
        name_column=columns.get("name", "name"),
        ra_column=columns.get("ra", "ra"),
        dec_column=columns.get("dec", "dec"),
        label_column=columns.get("label", "fr_class"),
        split_column=columns.get("split", "split"),  # the schema's default; null: a stratified split
        label_map=dict(catalogue_config.get("label_map", {})),
        select=dict(catalogue_config.get("select", {})),
        test_fraction=split_config.get("test_fraction", 0.3),
        split_seed=split_config.get("seed", 0),
        duplicate_radius_arcsec=catalogue_config.get("duplicate_radius_arcsec", 1.0),
        assign_split=catalogue_config.get("assign_split"),
        carry=list(catalogue_config.get("carry", [])),
        require_both_splits=require_both_splits,
        folders=folder.get("path"),
        pattern=folder.get("pattern"),
    )


# ------------------------------------------------- the stage: one or several catalogues, merged and checked


def catalogue_entries(catalogue_config: dict) -> list[dict]:
    """One dict per input catalogue: the ``sources`` list, or the section itself named after its file."""
    entries = catalogue_config.get("sources") or [
        {"name": Path(entry_path(catalogue_config)).stem,
         **{key: value for key, value in catalogue_config.items() if key in ENTRY_KEYS}}
    ]
    names = [entry["name"] for entry in entries]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CatalogueError(f"config key catalogue.sources: name(s) {repeated} used more than once; give each entry its own")
    unknown = [name for name in _prefer(catalogue_config) if name not in names]
    if unknown:
        raise CatalogueError(f"config key catalogue.prefer: {unknown} name no entry of catalogue.sources; its names are {names}")
    return entries


DEFAULT_PATH = "resources/catalogues/frdeep_v2.csv"
ENTRY_KEYS = ("path", "columns", "label_map", "select", "split", "duplicate_radius_arcsec", "assign_split", "carry",
              "folders")


def entry_path(entry: dict) -> str:
    """What one catalogue is read from: its image folder (catalogue.folders.path), else its CSV file."""
    return (entry.get("folders") or {}).get("path") or entry.get("path", DEFAULT_PATH)


def _prefer(catalogue_config: dict) -> list[str]:
    prefer = catalogue_config.get("prefer") or []
    return [prefer] if isinstance(prefer, str) else list(prefer)


def catalogue_paths(catalogue_config: dict) -> list[str]:
    """The CSV file (or image folder) of every input catalogue (once each), for the rule's input."""
    return list(dict.fromkeys(entry_path(entry) for entry in catalogue_entries(catalogue_config)))


def build_sources(catalogue_config: dict, class_names: list[str],
                  fields: dict[str, float]) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """(sources, merge report, train/test neighbour report): read each catalogue, merge, resolve neighbours.

    ``fields``: cutout side in arcsec per survey (rgmorph.neighbours.survey_fields) for the overlap check.
    """
    entries = catalogue_entries(catalogue_config)
    several = len(entries) > 1
    tables = [(entry["name"], read_catalogue(entry_path(entry),
                                             spec_from_config(entry, class_names, require_both_splits=not several)))
              for entry in entries]
    merged, report = crossmatch.merge_catalogues(tables, catalogue_config.get("match_radius_arcsec", 30.0),
                                                 _prefer(catalogue_config))
    unplaced = report.get("sources_without_position", 0)
    if unplaced and several:
        log.warning("merge by position skipped for %d sources without a position: each is kept as its own source",
                    unplaced)
    settings = neighbours.NeighbourSettings.from_config(catalogue_config.get("neighbours"))
    sources, pairs = neighbours.resolve_neighbours(merged, settings, fields)
    require_both_splits(sources, "catalogue " + " + ".join(str(entry_path(entry)) for entry in entries))
    report["neighbours"] = {"action": settings.action, "cross_split_pairs": int(len(pairs)),
                            **({"skipped_without_position": unplaced} if unplaced else {}),
                            "sources_dropped": int(len(merged) - len(sources)),
                            "sources_moved": int((merged["split"].to_numpy() != sources["split"].to_numpy()).sum())
                            if len(merged) == len(sources) else 0}
    report["sources"] = _counts(sources)
    return sources[_output_columns(sources)], report, pairs


def _counts(sources: pd.DataFrame) -> dict:
    counts = sources.groupby(["catalogue", "class_name", "split"]).size()
    return {"total": int(len(sources)), **{"/".join(key): int(value) for key, value in counts.items()}}


def _output_columns(sources: pd.DataFrame) -> list[str]:
    return [*OUTPUT_COLUMNS, "catalogue", *[column for column in sources.columns
                                            if column not in OUTPUT_COLUMNS and column != "catalogue"]]


def write_catalogue_stage(catalogue_config: dict, class_names: list[str], fields: dict[str, float],
                          sources_path: str | Path, merge_report_path: str | Path, neighbours_path: str | Path) -> pd.DataFrame:
    """The catalogue stage: sources.csv, the merge report (JSON) and the neighbour report (CSV), atomically."""
    sources, report, pairs = build_sources(catalogue_config, class_names, fields)
    log.info("merge: %s", {key: value for key, value in report.items() if key != "groups"})
    for row in pairs.itertuples(index=False):
        log.warning("train/test neighbours %s / %s, %.1f arcsec apart: %s", row.train_name, row.test_name,
                    row.separation_arcsec, row.action)
    write_json_atomic(merge_report_path, report)
    write_csv_atomic(neighbours_path, pairs, float_format="%.4f")
    write_csv_atomic(sources_path, sources, float_format="%.8f")
    return sources
