"""Image folders as a catalogue: ``<split>/<class>/<file>`` (or ``<class>/<file>``), the ImageFolder layout.

Each image file becomes one row of strings, as a CSV catalogue is read: ``name`` (the file name
without its suffix), ``label`` (its class folder), ``split`` (its split folder, '' without one),
``file`` (its path: the folder given, joined with the file's place under it) and, from an optional
file-name pattern such as ``{ra}_{dec}_{label}_{catalogue}.png``, ``ra``/``dec`` and any other field.
A pattern field named like a column of sources.csv that rgmorph writes itself (e.g. ``catalogue``)
is kept apart as ``pattern_<field>``. ``rgmorph.catalogue`` reads the rows like any other catalogue.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
# split folder names understood as splits; 'valid' / 'val' are the validation split
SPLIT_FOLDERS = ("train", "test", "validation", "valid", "val")
# what the pattern's fields become; other fields are carried as they are
POSITION_FIELDS = ("name", "ra", "dec", "label")
# columns rgmorph writes into sources.csv itself (rgmorph.catalogue.RESERVED_COLUMNS keeps them in step)
INTERNAL_COLUMNS = ("name", "ra_deg", "dec_deg", "class_name", "label", "split", "catalogue", "file")


class FolderError(ValueError):
    """A folder that cannot be read as a catalogue; the message names the folder or file."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((suffix for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True) if name.endswith(suffix)), "")


def pattern_regex(pattern: str) -> tuple[re.Pattern, list[str]]:
    """The regex of a file-name pattern ('{ra}_{dec}_{label}.png') and its field names, in order."""
    fields = re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", pattern)
    repeated = sorted({field for field in fields if fields.count(field) > 1})
    if not fields or repeated:
        raise FolderError(f"file-name pattern {pattern!r}: " + (f"field(s) {repeated} used twice" if repeated else
                                                                 "no {field}; e.g. '{ra}_{dec}_{label}.png'"))
    if ("ra" in fields) != ("dec" in fields):
        raise FolderError(f"file-name pattern {pattern!r}: a position needs both {{ra}} and {{dec}}")
    parts = re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", pattern)
    regex = "".join(re.escape(part) + (f"(?P<{field}>.+?)" if k < len(fields) else "")
                    for k, (part, field) in enumerate(zip(parts, [*fields, None])))
    return re.compile(f"^{regex}$", re.IGNORECASE), fields


def _column(field: str) -> str:
    return field if field in POSITION_FIELDS or field not in INTERNAL_COLUMNS else f"pattern_{field}"


def _images(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file() and _suffix(path)
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def _layout(folder: Path) -> bool:
    """Whether ``folder`` holds split folders (else class folders); refused when it is neither."""
    subfolders = sorted(path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not subfolders:
        raise FolderError(f"folder {folder} has no subfolders; lay it out as <split>/<class>/<image> or "
                          "<class>/<image> (split: train, valid, test)")
    splits = [name for name in subfolders if name.lower() in SPLIT_FOLDERS]
    if splits and len(splits) != len(subfolders):
        raise FolderError(f"folder {folder} mixes split folders {splits} with others "
                          f"{sorted(set(subfolders) - set(splits))}; every top folder must be a split "
                          f"({', '.join(SPLIT_FOLDERS)}) or every one a class")
    return bool(splits)


def read_folders(folder: str | Path, pattern: str | None = None) -> pd.DataFrame:
    """One row of strings per image under ``folder`` (columns: module docstring); FolderError listing every
    file that does not fit the layout or the pattern."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FolderError(f"catalogue folder {folder} does not exist or is not a folder")
    has_splits = _layout(folder)
    regex, fields = pattern_regex(pattern) if pattern else (None, [])
    rows, problems = [], []
    for path in _images(folder):
        parts = path.relative_to(folder).parts
        if len(parts) != (3 if has_splits else 2):
            problems.append(f"{path}: not at <split>/<class>/<image>" if has_splits else
                            f"{path}: not at <class>/<image>")
            continue
        row = {"name": path.name[:len(path.name) - len(_suffix(path))], "label": parts[-2],
               "split": parts[0] if has_splits else "", "file": str(folder / Path(*parts))}
        if regex is not None:
            match = regex.match(path.name)
            if match is None:
                problems.append(f"{path}: file name does not match the pattern {pattern!r}")
                continue
            found = {_column(field): value for field, value in match.groupdict().items()}
            if "label" in found and found.pop("label") != row["label"]:
                problems.append(f"{path}: label {match['label']!r} in the file name, but in class folder {parts[-2]!r}")
                continue
            row.update(found)
        rows.append(row)
    if problems:
        listing = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise FolderError(f"catalogue folder {folder}: {len(problems)} file(s) do not fit:\n  {listing}")
    if not rows:
        raise FolderError(f"catalogue folder {folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    columns = ["name", "ra", "dec", "label", "split", "file", *[_column(f) for f in fields if f not in POSITION_FIELDS]]
    return pd.DataFrame(rows, dtype=object).reindex(columns=columns, fill_value="").fillna("")


def has_positions(pattern: str | None) -> bool:
    """Whether a pattern gives each file's position (both {ra} and {dec})."""
    fields = pattern_regex(pattern)[1] if pattern else []
    return "ra" in fields and "dec" in fields
