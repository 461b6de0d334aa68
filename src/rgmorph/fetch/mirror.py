"""Cutouts from one directory laid out like SkyView's mirror (index.csv + <survey>/<ra><dec>.fits.gz),
and the mirror setting (``fetch.mirror_dir`` or ``$RGMORPH_SKYVIEW_MIRROR``) as a list of directories."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from rgmorph.fetch.common import MAX_CUTOUT_BYTES, FetchError, FetchSettings, PermanentFetchError, Survey, too_large
from rgmorph.files import sha256_bytes

MIRROR_ENVIRONMENT_VARIABLE = "RGMORPH_SKYVIEW_MIRROR"
MIRROR_INDEX_COLUMNS = ["survey", "ra_deg", "dec_deg", "file", "sha256"]
# A mirror position matches a catalogue position when closer than this: the shared mirror's
# index rounds RA to 1e-3 deg (up to 1.8 arcsec off), still within one FIRST pixel.
MIRROR_MATCH_ARCSEC = 3.0


def read_checked_cutout(path: Path, sha256: str, max_bytes: int = MAX_CUTOUT_BYTES) -> bytes:
    """A mirror file's bytes (gunzipped), checked against its size cap and the sha256 its index.csv holds
    (the uncompressed file's): PermanentFetchError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise PermanentFetchError(f"file {path} is missing")
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise PermanentFetchError(f"cannot read {path} ({exc})") from None
    if len(data) > max_bytes:
        raise too_large(f"{path} (uncompressed)", max_bytes)
    if sha256_bytes(data) != sha256:
        raise PermanentFetchError(f"sha256 of the (uncompressed) file is {sha256_bytes(data)[:12]}..., "
                                  f"the index says {sha256[:12]}...")
    return data


def _raise_if_unreadable(sources: pd.DataFrame, survey: Survey, find, where: str, name_mirror: bool = False) -> None:
    """Before fetching: every mirror file the catalogue needs reads and matches its sha256. ``find(survey, ra,
    dec)`` -> (mirror, index row); a position no mirror holds is that source's own failure (fetch.on_failure)."""
    problems = []
    for row in sources.itertuples(index=False):
        try:
            mirror, entry = find(survey, row.ra_deg, row.dec_deg)
        except PermanentFetchError:
            continue
        try:
            mirror._read(entry)
        except PermanentFetchError as exc:
            index = f"{mirror.root}/index.csv" if name_mirror else "index.csv"
            problems.append(f"{index} line {entry.name + 2} ({entry['file']}): {exc}")
    if problems:
        listing = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise FetchError(f"{where} damaged: {len(problems)} {survey.key} cutout(s) that the catalogue needs cannot be "
                         f"used:\n  {listing}\nRe-copy these files from the original mirror (or fix index.csv), then rerun.")


class MirrorSource:
    """Cutouts from a directory laid out like SkyView's mirror: index.csv + <survey>/<ra><dec>.fits.gz."""

    def __init__(self, mirror_dir: str | Path, max_bytes: int = MAX_CUTOUT_BYTES):
        self.root = Path(mirror_dir)
        self.index = read_mirror_index(self.root)
        self.max_bytes = max_bytes
        self.requests = 0  # no HTTP here; kept for the report
        self._coords = {}

    def _rows(self, survey: Survey):
        if survey.skyview_name not in self._coords:
            rows = self.index[self.index["survey"] == survey.skyview_name]
            if rows.empty:
                raise PermanentFetchError(f"mirror {self.root} holds no '{survey.skyview_name}' cutouts")
            coords = SkyCoord(rows["ra_deg"].to_numpy() * u.deg, rows["dec_deg"].to_numpy() * u.deg)
            self._coords[survey.skyview_name] = (rows, coords)
        return self._coords[survey.skyview_name]

    def _locate(self, survey: Survey, ra_deg: float, dec_deg: float) -> pd.Series:
        """The nearest index row (its ``name`` is the pandas label: index.csv line = label + 2)."""
        rows, coords = self._rows(survey)
        separation = coords.separation(SkyCoord(ra_deg * u.deg, dec_deg * u.deg)).arcsec
        nearest = int(np.argmin(separation))
        if separation[nearest] > MIRROR_MATCH_ARCSEC:
            raise PermanentFetchError(
                f"mirror {self.root} has no '{survey.skyview_name}' cutout within {MIRROR_MATCH_ARCSEC} arcsec"
            )
        return rows.iloc[nearest]

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        """Before fetching anything: the survey is mirrored and every file the sources need is intact."""
        held = sorted(self.index["survey"].unique())
        if survey.skyview_name not in held:
            raise FetchError(
                f"mirror {self.root} holds no '{survey.skyview_name}' cutouts (config surveys.{survey.key}.skyview_name); "
                f"its index.csv lists {held}. Use one of those names or a mirror that holds this survey."
            )
        _raise_if_unreadable(sources, survey, lambda *position: (self, self._locate(*position)),
                             f"mirror {self.root} is")

    def _read(self, entry: pd.Series) -> bytes:
        return read_checked_cutout(self.root / entry["file"], entry["sha256"], self.max_bytes)

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return self._locate(survey, ra_deg, dec_deg)["sha256"]

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        return self._read(self._locate(survey, ra_deg, dec_deg))


def read_mirror_index(mirror_dir: str | Path) -> pd.DataFrame:
    """The mirror's index.csv, checked: FetchError naming the file, column or line when it is unusable."""
    root = Path(mirror_dir)
    index_path = root / "index.csv"
    if not index_path.is_file():
        raise FetchError(
            f"mirror {root} has no index.csv; point fetch.mirror_dir (or ${MIRROR_ENVIRONMENT_VARIABLE}) "
            "at a directory laid out like shared/skyview-mirror"
        )
    try:
        index = pd.read_csv(index_path, dtype={"survey": str, "file": str, "sha256": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise FetchError(f"mirror index {index_path} cannot be read as CSV ({exc})") from None
    missing = [column for column in MIRROR_INDEX_COLUMNS if column not in index.columns]
    if missing:
        raise FetchError(f"mirror index {index_path} lacks column(s) {missing}; it has {list(index.columns)}")
    if index.empty:
        raise FetchError(f"mirror index {index_path} has no rows")
    for column in ("ra_deg", "dec_deg"):
        values = pd.to_numeric(index[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise FetchError(f"mirror index {index_path} line {bad[0] + 2}: {column} {index[column].iloc[bad[0]]!r} "
                             "is not a number of degrees")
        index[column] = values.astype(float)
    for line, file in enumerate(index["file"], start=2):
        if not isinstance(file, str) or Path(file).is_absolute() or ".." in Path(file).parts:
            raise FetchError(f"mirror index {index_path} line {line}: file {file!r} must be a path inside the mirror "
                             "(relative, without '..')")
    return index


def mirror_dirs(value) -> list[str]:
    """``fetch.mirror_dir`` (or ``$RGMORPH_SKYVIEW_MIRROR``) as a list: a list as it is; a string split
    at ``os.pathsep`` (':' on Linux), so that one variable can name several mirrors; None: []."""
    if not value:
        return []
    if isinstance(value, str):
        return [part for part in value.split(os.pathsep) if part]
    return [str(part) for part in value]


def mirror_setting(config_value):
    """The mirror(s) to read: ``$RGMORPH_SKYVIEW_MIRROR`` when set (one directory, or several joined
    by ``os.pathsep``), else the config's ``fetch.mirror_dir`` (a directory or a list)."""
    return os.environ.get(MIRROR_ENVIRONMENT_VARIABLE) or config_value
