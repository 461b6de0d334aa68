"""Stage 2: fetch FITS cutouts from NASA SkyView (through astroquery), from local mirrors, or from your own files.

``fetch.source``: ``skyview``; ``mirror`` (``fetch.mirror_dir``: one directory laid out like
shared/skyview-mirror, or a list of them: each source's cutout comes from the first mirror whose
index.csv holds it); ``files`` (your own cutouts, for surveys SkyView does not serve: a sources.csv
column, ``fetch.file_columns[<survey>]``, names each source's FITS/PNG/JPEG file, relative paths
resolved against ``fetch.files_dir``; see ``FileSource``).

Every file is kept byte for byte as served (FIRST headers hold tabs that astropy will not write
back), capped at ``fetch.max_cutout_bytes``, checked to be a 2-D image of the requested size
holding some signal, written atomically and recorded with its sha256 in the manifest. Only valid
files sit in the output directory, so a rerun after any crash reuses them and fetches the rest.

Manifest ``status`` per source: ``ok`` (first attempt), ``retried`` (``detail`` lists the failed
attempts), ``present`` (reused), ``blank`` (all-NaN/zero in every attempt: outside the footprint;
no file kept) or ``failed`` (``detail`` says why). Retries follow one tenacity policy
(``retry_policy``). ``fetch.on_failure``: ``stop`` ends the run listing blank/failed sources,
``exclude`` goes on without them. Whatever happens (failed checks before fetching, a service
that is down, a full disk) ``manifest.report.json`` holds the outcome, the error, counts,
failures, retries, requests, wall time, versions and the cutouts fetched so far.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import gzip
import importlib.metadata
import io
import json
import logging
import os
import platform
import threading
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import tenacity
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from rgmorph import files
from rgmorph.files import remove_stale_parts, sha256_bytes

log = logging.getLogger(__name__)

MIRROR_ENVIRONMENT_VARIABLE = "RGMORPH_SKYVIEW_MIRROR"
SKYVIEW_URL_ENVIRONMENT_VARIABLE = "RGMORPH_SKYVIEW_URL"
MANIFEST_COLUMNS = ["name", "survey", "ra_deg", "dec_deg", "file", "sha256", "status", "attempts", "detail"]
MIRROR_INDEX_COLUMNS = ["survey", "ra_deg", "dec_deg", "file", "sha256"]
# A mirror position matches a catalogue position when closer than this: the shared mirror's
# index rounds RA to 1e-3 deg (up to 1.8 arcsec off), still within one FIRST pixel.
MIRROR_MATCH_ARCSEC = 3.0
USABLE_STATUSES = ("ok", "retried", "present")
ON_FAILURE_CHOICES = ("stop", "exclude")
SOURCE_CHOICES = ("mirror", "skyview", "files")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BLANK_DETAIL = "outside the survey footprint (all NaN/zero)"
NOT_ATTEMPTED = "not attempted"
MAX_CUTOUT_BYTES = 50_000_000  # a 150x150 float32 cutout is ~0.1 MB; SkyView's largest are a few MB


class FetchError(RuntimeError):
    """Fetching cannot go on, or some sources failed for good (the message lists them)."""


class RetryableFetchError(Exception):
    """A failure worth retrying: network errors, server errors, damaged or wrong files."""


class PermanentFetchError(Exception):
    """A failure that a retry cannot fix (unknown survey, no image at this position, too large)."""


class BlankCutoutError(RetryableFetchError):
    """An all-NaN/all-zero image: outside the footprint, or a glitch that a retry may fix."""


@dataclass(frozen=True)
class Survey:
    key: str  # short name used in paths, e.g. FIRST
    skyview_name: str  # SkyView's survey name, e.g. 'VLA FIRST (1.4 GHz)'
    pixels: int = 150


def _is_number(value, strict: bool = False) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and (value > 0 if strict else value >= 0)


@dataclass(frozen=True)
class FetchSettings:
    source: str = "mirror"  # 'mirror', 'skyview' or 'files'
    mirror_dir: str | list[str] | None = None  # one mirror, or several tried in order
    skyview_url: str = "https://skyview.gsfc.nasa.gov/current/cgi/basicform.pl"
    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    max_concurrent: int = 4
    max_requests_per_s: float | None = None
    on_failure: str = "stop"  # 'stop' or 'exclude'
    # Stop (whatever on_failure says) once this many sources in a row failed for good: the service
    # is down, and going on would only burn the retries of every remaining source. 0: never.
    max_consecutive_failures: int = 10
    max_cutout_bytes: int = MAX_CUTOUT_BYTES  # cap on one download or one gunzipped mirror file
    # source 'files': base directory of relative file paths (None: the working directory), and
    # per survey the sources.csv column (carried from the catalogue) naming each source's file.
    files_dir: str | None = None
    file_columns: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.source not in SOURCE_CHOICES:
            problems.append(f"fetch.source must be one of {list(SOURCE_CHOICES)}, not {self.source!r}")
        if not isinstance(self.file_columns, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and v for k, v in self.file_columns.items()):
            problems.append(f"fetch.file_columns must map survey names to column names, not {self.file_columns!r}")
        if self.mirror_dir is not None and not (isinstance(self.mirror_dir, str) or (
                isinstance(self.mirror_dir, (list, tuple)) and self.mirror_dir
                and all(isinstance(d, str) and d for d in self.mirror_dir))):
            problems.append(f"fetch.mirror_dir must be a directory or a non-empty list of them, not {self.mirror_dir!r}")
        if self.on_failure not in ON_FAILURE_CHOICES:
            problems.append(f"fetch.on_failure must be one of {list(ON_FAILURE_CHOICES)}, not {self.on_failure!r}")
        for key, minimum in (("retries", 0), ("max_consecutive_failures", 0), ("max_concurrent", 1),
                             ("max_cutout_bytes", 1)):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < minimum:
                problems.append(f"fetch.{key} must be an integer >= {minimum}, not {getattr(self, key)!r}")
        for key in ("timeout_s", "backoff_s", "max_backoff_s"):
            if not _is_number(getattr(self, key), strict=key == "timeout_s"):
                problems.append(f"fetch.{key} must be a positive number, not {getattr(self, key)!r}")
        if self.max_requests_per_s is not None and not _is_number(self.max_requests_per_s, strict=True):
            problems.append(f"fetch.max_requests_per_s must be a positive number or null, not {self.max_requests_per_s!r}")
        if problems:
            raise FetchError("invalid fetch settings: " + "; ".join(problems))


def retry_policy(settings: FetchSettings, label: str, abort: threading.Event | None = None) -> tenacity.Retrying:
    """Retry a RetryableFetchError ``settings.retries`` times, waiting ``backoff_s`` doubling up to
    ``max_backoff_s``; stop early once ``abort`` is set. The last error is re-raised as it is."""
    stop = tenacity.stop_after_attempt(settings.retries + 1)
    if abort is not None:
        stop = stop | tenacity.stop_when_event_set(abort)
    return tenacity.Retrying(
        stop=stop, retry=tenacity.retry_if_exception_type(RetryableFetchError), reraise=True,
        wait=tenacity.wait_exponential(multiplier=settings.backoff_s, max=settings.max_backoff_s),
        before_sleep=lambda state: log.info("%s: attempt %d failed (%s); retrying in %.2f s", label,
                                            state.attempt_number, state.outcome.exception(), state.next_action.sleep))


def cutout_filename(ra_deg: float, dec_deg: float) -> str:
    """The mirror's naming: RA and Dec in degrees, e.g. 212.13500+00.52609.fits."""
    return f"{ra_deg:09.5f}{dec_deg:+09.5f}.fits"


def check_fits_image(data: bytes, pixels: int) -> np.ndarray:
    """Return the image in ``data`` or raise RetryableFetchError saying why it is not a usable cutout."""
    if data[:9] != b"SIMPLE  =":
        snippet = data[:60].decode("latin-1", "replace").strip()
        raise RetryableFetchError(f"not a FITS file (starts with {snippet!r})")
    if len(data) % 2880:
        raise RetryableFetchError(f"truncated FITS file ({len(data)} bytes is not a multiple of 2880)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SkyView's COMMENT cards hold tabs: harmless on read
            with fits.open(io.BytesIO(data), memmap=False) as hdus:
                end = hdus.fileinfo(0)["datLoc"] + hdus.fileinfo(0)["datSpan"]
                if end > len(data):
                    raise RetryableFetchError(f"truncated FITS file ({len(data)} bytes; its header declares {end})")
                image = next((hdu.data for hdu in hdus if hdu.data is not None and hdu.data.ndim == 2), None)
                image = None if image is None else np.array(image, dtype=np.float32)
    except RetryableFetchError:
        raise
    except Exception as exc:
        raise RetryableFetchError(f"unreadable FITS file ({exc})") from None
    if image is None:
        raise RetryableFetchError("FITS file holds no 2-D image")
    if image.shape != (pixels, pixels):
        raise RetryableFetchError(f"image is {image.shape[0]}x{image.shape[1]}, expected {pixels}x{pixels}")
    return image


def is_blank(image: np.ndarray) -> bool:
    """All NaN or all zero: the position lies outside the survey's footprint."""
    finite = image[np.isfinite(image)]
    return finite.size == 0 or not np.any(finite)


def check_cutout(data: bytes, pixels: int) -> np.ndarray:
    """check_fits_image, and the image must hold some signal (BlankCutoutError if not)."""
    image = check_fits_image(data, pixels)
    if is_blank(image):
        raise BlankCutoutError(BLANK_DETAIL)
    return image


def too_large(what: str, max_bytes: int) -> PermanentFetchError:
    return PermanentFetchError(f"{what} is larger than fetch.max_cutout_bytes ({max_bytes} bytes)")


def write_or_explain(target: Path, data: bytes) -> None:
    """Write ``data`` atomically; a failed write (full disk, no permission) becomes a FetchError naming the
    file and, for a full disk, how many bytes it needed."""
    try:
        files.write_bytes_atomic(target, data)
    except OSError as exc:
        needed = f"; {len(data)} bytes were needed" if exc.errno == errno.ENOSPC else ""
        raise FetchError(f"cannot write {target}: {exc.strerror or exc}{needed}. Free space or fix the "
                         "permissions, then rerun: the valid cutouts fetched so far are kept.") from None


class RateLimiter:
    """At most ``rate`` requests per second across all threads (None: no limit)."""

    def __init__(self, rate: float | None):
        self._interval = 1.0 / rate if rate else 0.0
        self._next_slot = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self._interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        time.sleep(max(0.0, slot - now))


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
        """The (gunzipped) file of an index row, checked against its size cap and sha256."""
        path = self.root / entry["file"]
        if not path.is_file():
            raise PermanentFetchError(f"file {path} is missing")
        try:
            with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as handle:
                data = handle.read(self.max_bytes + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise PermanentFetchError(f"cannot read {path} ({exc})") from None
        if len(data) > self.max_bytes:
            raise too_large(f"{path} (uncompressed)", self.max_bytes)
        if sha256_bytes(data) != entry["sha256"]:
            raise PermanentFetchError(f"sha256 of the (uncompressed) file is {sha256_bytes(data)[:12]}..., "
                                      f"the index says {entry['sha256'][:12]}...")
        return data

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


class MirrorSet:
    """Several mirrors in order: a source's cutout comes from the first whose index.csv holds it."""

    def __init__(self, mirror_dirs_: list[str | Path], max_bytes: int = MAX_CUTOUT_BYTES):
        self.mirrors = [MirrorSource(root, max_bytes) for root in mirror_dirs_]
        self.requests = 0
        self._names = ", ".join(str(m.root) for m in self.mirrors)

    def _holding(self, survey: Survey) -> list[MirrorSource]:
        return [m for m in self.mirrors if (m.index["survey"] == survey.skyview_name).any()]

    def _find(self, survey: Survey, ra_deg: float, dec_deg: float) -> tuple[MirrorSource, pd.Series]:
        for mirror in self._holding(survey):
            try:
                return mirror, mirror._locate(survey, ra_deg, dec_deg)
            except PermanentFetchError:
                continue
        raise PermanentFetchError(f"none of the mirrors ({self._names}) has a '{survey.skyview_name}' cutout "
                                  f"within {MIRROR_MATCH_ARCSEC} arcsec")

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        if not self._holding(survey):
            held = sorted(set().union(*(set(m.index["survey"]) for m in self.mirrors)))
            raise FetchError(
                f"none of the mirrors ({self._names}) holds '{survey.skyview_name}' cutouts (config "
                f"surveys.{survey.key}.skyview_name); their index.csv files list {held}. Use one of those names or "
                "add a mirror that holds this survey."
            )
        _raise_if_unreadable(sources, survey, self._find, "mirrors", name_mirror=True)

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return self._find(survey, ra_deg, dec_deg)[1]["sha256"]

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        mirror, entry = self._find(survey, ra_deg, dec_deg)
        return mirror._read(entry)


def image_file_to_array(path: Path) -> np.ndarray:
    """A PNG/JPEG as a 2-D float32 array, rows flipped so that row 0 is the bottom as in FITS.
    Grey images keep their values (8 or 16 bit, or float); RGB(A) and palette images become
    their luminance 0.299 R + 0.587 G + 0.114 B (alpha dropped); grey+alpha keeps the grey channel."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("RGB")
            array = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PermanentFetchError(f"unreadable image ({exc})") from None
    if array.ndim == 3:
        array = (array[..., 0] if array.shape[2] < 3
                 else 0.299 * array[..., 0] + 0.587 * array[..., 1] + 0.114 * array[..., 2])
    if array.ndim != 2:
        raise PermanentFetchError(f"image has {array.ndim} dimensions, not 2")
    return np.ascontiguousarray(np.flipud(array), dtype=np.float32)


def fits_bytes(image: np.ndarray, origin: Path) -> bytes:
    """A FITS file holding ``image``, with the file it came from in its header (deterministic bytes)."""
    hdu = fits.PrimaryHDU(image.astype(np.float32))
    hdu.header["ORIGFILE"] = (origin.name[-68:], "image file this cutout was converted from")
    hdu.header["COMMENT"] = "Converted by rgmorph.fetch (fetch.source: files); rows flipped to FITS order."
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


class FileSource:
    """Your own cutouts: a sources.csv column (``fetch.file_columns[<survey>]``, carried from the
    catalogue with ``catalogue.carry``) names each source's file; relative paths are resolved against
    ``fetch.files_dir``. FITS files (.fits, .fit, .fts, optionally .gz) are kept byte for byte
    (gunzipped); PNG/JPEG files are read with Pillow (see ``image_file_to_array``) and written as a
    FITS file, so the preprocess step reads every cutout the same way. Each is checked like a fetched
    cutout (2-D, ``surveys.<name>.pixels`` square, not blank); a file that is missing, unreadable or
    wrong fails its source with its sources.csv line, name and path (fetch.on_failure then applies)."""

    def __init__(self, file_columns: dict, files_dir: str | Path | None = None, max_bytes: int = MAX_CUTOUT_BYTES):
        self.file_columns = dict(file_columns)
        self.files_dir = Path(files_dir) if files_dir else None
        self.max_bytes = max_bytes
        self.requests = 0
        self._rows = {}  # (ra, dec) -> (sources.csv line, name, path or None)
        self._pixels = None

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        column = self.file_columns.get(survey.key)
        if not column:
            raise FetchError(f"fetch.source is 'files' but fetch.file_columns names no column for survey {survey.key}; "
                             f"add `{survey.key}: <catalogue column holding each source's file>`")
        if column not in sources.columns:
            raise FetchError(f"sources.csv has no column '{column}' (fetch.file_columns.{survey.key}); list it under "
                             f"the catalogue's carry so that the catalogue step copies it into sources.csv "
                             f"(sources.csv has {list(sources.columns)})")
        if self.files_dir is not None and not self.files_dir.is_dir():
            raise FetchError(f"fetch.files_dir {self.files_dir} is not a directory")
        for line, (row, value) in enumerate(zip(sources.itertuples(index=False), sources[column]), start=2):
            path = None
            if isinstance(value, str) and value.strip():
                path = Path(value.strip())
                if not path.is_absolute() and self.files_dir is not None:
                    path = self.files_dir / path
            self._rows[(row.ra_deg, row.dec_deg)] = (line, row.name, path, column)

    def _where(self, ra_deg: float, dec_deg: float) -> tuple[str, Path | None]:
        line, name, path, column = self._rows[(ra_deg, dec_deg)]
        return f"source {name} (sources.csv line {line}, column {column})", path

    def _load(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        where, path = self._where(ra_deg, dec_deg)
        if path is None:
            raise PermanentFetchError(f"{where}: no file named")
        if not path.is_file():
            raise PermanentFetchError(f"{where}: file {path} is missing")
        name = path.name.lower()
        try:
            if name.endswith(FITS_SUFFIXES):
                if path.stat().st_size > self.max_bytes and not name.endswith(".gz"):
                    raise too_large(str(path), self.max_bytes)
                try:
                    with (gzip.open if name.endswith(".gz") else open)(path, "rb") as handle:
                        data = handle.read(self.max_bytes + 1)
                except (OSError, EOFError, zlib.error) as exc:
                    raise PermanentFetchError(f"cannot read it ({exc})") from None
                if len(data) > self.max_bytes:
                    raise too_large(f"{path} (uncompressed)", self.max_bytes)
                check_cutout(data, survey.pixels)
                return data
            if name.endswith(IMAGE_SUFFIXES):
                if path.stat().st_size > self.max_bytes:
                    raise too_large(str(path), self.max_bytes)
                image = image_file_to_array(path)
                if image.shape != (survey.pixels, survey.pixels):
                    raise PermanentFetchError(f"image is {image.shape[0]}x{image.shape[1]}, expected "
                                              f"{survey.pixels}x{survey.pixels} (surveys.{survey.key}.pixels)")
                if is_blank(image):
                    raise PermanentFetchError("blank image (all NaN/zero)")
                return fits_bytes(image, path)
        except (PermanentFetchError, RetryableFetchError) as exc:
            raise PermanentFetchError(f"{where}: file {path}: {exc}") from None
        raise PermanentFetchError(f"{where}: file {path}: unsupported type; use FITS ({', '.join(FITS_SUFFIXES)}) "
                                  f"or {', '.join(IMAGE_SUFFIXES)}")

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return sha256_bytes(self._load(survey, ra_deg, dec_deg))

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        return self._load(survey, ra_deg, dec_deg)


def _describe(exc: Exception) -> str:
    """A short, human reason for a requests exception."""
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, requests.Timeout):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"connection dropped mid-transfer ({type(exc).__name__})"
    text = str(exc)
    for needle, words in (("Connection refused", "connection refused"), ("reset by peer", "connection reset"),
                          ("IncompleteRead", "connection dropped mid-transfer"),
                          ("RemoteDisconnected", "connection closed without a response"),
                          ("Connection aborted", "connection aborted")):
        if needle in text:
            return f"{words} ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text[:200]}"


def _page_text(response) -> str:
    if response is None:
        return ""
    from bs4 import BeautifulSoup

    return BeautifulSoup(response.content, "html.parser").get_text(" ", strip=True)[:160]


class SkyViewSource:
    """Cutouts from SkyView (or a service speaking its protocol) through astroquery's client."""

    def __init__(self, url: str, timeout_s: float, limiter: RateLimiter, max_bytes: int = MAX_CUTOUT_BYTES):
        self.url = url
        self.timeout_s = timeout_s
        self.limiter = limiter
        self.max_bytes = max_bytes
        self.requests = 0  # HTTP requests sent, for the report
        self._survey_dict = None
        self._count_lock = threading.Lock()
        self._local = threading.local()

    def _count(self) -> None:
        with self._count_lock:
            self.requests += 1

    def _client(self):
        # One client per thread: a requests.Session is not meant to be shared across threads.
        if not hasattr(self._local, "client"):
            self._local.client = _make_skyview_client(self.url, self.timeout_s, self.limiter, self._count)
            if self._survey_dict:
                self._local.client._survey_dict = dict(self._survey_dict)  # read once, in preflight
        return self._local.client

    def _read_survey_list(self) -> dict:
        import requests

        try:
            return self._client().survey_dict
        except RetryableFetchError:
            raise
        except requests.RequestException as exc:
            raise RetryableFetchError(_describe(exc)) from None
        except Exception as exc:  # an odd page: BeautifulSoup finds no <select> ids etc.
            raise RetryableFetchError(f"unexpected form page ({type(exc).__name__}: {exc})") from None

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        """Read the form page (retried like any request): stop now if the service is unreachable or
        does not offer the survey, rather than after every source has burnt its retries."""
        try:
            surveys = retry_policy(settings, f"{survey.key}: SkyView form page")(self._read_survey_list)
        except RetryableFetchError as exc:
            raise FetchError(
                f"cannot reach SkyView at {self.url}: all {settings.retries + 1} attempts to read its form page failed "
                f"(last: {exc}). Check fetch.skyview_url (or ${SKYVIEW_URL_ENVIRONMENT_VARIABLE}) and the "
                "network, then rerun: cutouts fetched earlier are kept."
            ) from None
        offered = [name for names in surveys.values() for name in names]
        if survey.skyview_name not in offered:
            close = difflib.get_close_matches(survey.skyview_name, offered, n=3, cutoff=0.4)
            hint = f"did you mean {close}?" if close else f"it offers e.g. {offered[:8]}."
            raise FetchError(
                f"SkyView at {self.url} does not offer survey '{survey.skyview_name}' "
                f"(config surveys.{survey.key}.skyview_name); {hint} Use SkyView's exact survey name."
            )
        self._survey_dict = surveys

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> None:
        return None  # SkyView publishes no checksums

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        client = self._client()
        client.last_results_page = client.last_response = None
        return self._download(client, self._fits_url(client, survey, ra_deg, dec_deg))

    def _fits_url(self, client, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        import requests

        # A SkyCoord, not a string: astroquery reads 'hh mm ss +dd mm ss' as degrees.
        position = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="fk5")
        try:
            urls = client.get_image_list(position=position, survey=survey.skyview_name,
                                         pixels=survey.pixels, scaling="Linear", cache=False)
        except (RetryableFetchError, PermanentFetchError):
            raise
        except requests.RequestException as exc:
            raise RetryableFetchError(f"query: {_describe(exc)}") from None
        except ValueError as exc:
            if "not among the surveys" in str(exc):  # only without preflight: an unknown survey name
                raise PermanentFetchError(f"SkyView at {self.url} does not offer survey '{survey.skyview_name}'") from None
            raise RetryableFetchError(f"query: unexpected page ({exc})") from None
        except Exception as exc:  # an error page instead of the form: astroquery's parser trips over it
            text = _page_text(client.last_response)
            raise RetryableFetchError(f"query: unexpected page ({text!r}; {type(exc).__name__})") from None
        if not urls:
            text = _page_text(client.last_results_page)
            if "no data" in text.lower():  # SkyView's own answer for a position it has no image of
                raise PermanentFetchError(f"SkyView has no {survey.key} image at this position ({text})")
            raise RetryableFetchError(f"query: the results page holds no FITS link ({text or 'empty page'})")
        return urls[0]

    def _download(self, client, url: str) -> bytes:
        """The file at ``url``, read in chunks and given up as soon as it passes the size cap."""
        import requests

        try:
            with client._request("GET", url, stream=True) as response:
                response.raise_for_status()
                chunks, size = [], 0
                for chunk in response.iter_content(1 << 16):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise too_large(f"the FITS file at {url}", self.max_bytes)
        except requests.RequestException as exc:
            raise RetryableFetchError(f"download: {_describe(exc)}") from None
        return b"".join(chunks)


def _make_skyview_client(url: str, timeout_s: float, limiter: RateLimiter, on_request=None):
    from astroquery.skyview import SkyViewClass

    class TimedSkyView(SkyViewClass):
        """astroquery's client, with a timeout and a rate limit on every request and no disk cache."""

        last_results_page = None
        last_response = None

        def _request(self, method, url, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout_s
            # Never the disk cache: astroquery caches any status-200 reply, so an error page served
            # for the form would be replayed to every later query (and to the next run).
            kwargs["cache"] = False
            limiter.wait()
            if on_request is not None:
                on_request()
            self.last_response = super()._request(method, url, **kwargs)
            return self.last_response

        @property
        def survey_dict(self):
            # astroquery keeps the first survey list it reads, even the empty one of an error
            # page; every query would then fail as 'unknown survey'. Keep only a real list.
            if not getattr(self, "_survey_dict", None):
                self.__dict__.pop("_survey_dict", None)
                surveys = SkyViewClass.survey_dict.fget(self)
                if not surveys:
                    self.__dict__.pop("_survey_dict", None)
                    raise RetryableFetchError(f"the form page at {self.URL} lists no surveys (an error page?)")
            return self._survey_dict

        def _parse_response(self, response):
            self.last_results_page = response  # to tell 'no data here' from an error page
            return super()._parse_response(response)

    client = TimedSkyView()
    client.URL = url
    return client


def make_source(settings: FetchSettings):
    if settings.source == "skyview":
        limiter = RateLimiter(settings.max_requests_per_s)
        return SkyViewSource(settings.skyview_url, settings.timeout_s, limiter, settings.max_cutout_bytes)
    if settings.source == "files":
        return FileSource(settings.file_columns, settings.files_dir, settings.max_cutout_bytes)
    roots = mirror_dirs(settings.mirror_dir)
    if not roots:
        raise FetchError(f"fetch.source is 'mirror' but no mirror directory is set (fetch.mirror_dir or ${MIRROR_ENVIRONMENT_VARIABLE})")
    if len(roots) == 1:
        return MirrorSource(roots[0], settings.max_cutout_bytes)
    return MirrorSet(roots, settings.max_cutout_bytes)


def _existing_file_problem(target: Path, survey: Survey, expected: str | None) -> str | None:
    """None if ``target`` is a valid cutout (matching ``expected`` when given), else why not."""
    data = target.read_bytes()
    try:
        check_cutout(data, survey.pixels)
    except RetryableFetchError as exc:
        return str(exc)
    if expected and sha256_bytes(data) != expected:
        return "its sha256 differs from the mirror's"
    return None


def _attempt(source, survey: Survey, row, errors: list[str]) -> bytes:
    """One try at a valid cutout; a retryable failure is noted in ``errors`` ('attempt N: why')."""
    try:
        data = source.get(survey, row.ra_deg, row.dec_deg)
        check_cutout(data, survey.pixels)
        return data
    except RetryableFetchError as exc:
        errors.append(f"attempt {len(errors) + 1}: {exc}")
        raise


def _given_up(record: dict, notes: list[str], errors: list[str], error: RetryableFetchError,
              settings: FetchSettings) -> dict:
    """The record of a source whose last allowed attempt failed (blank in every attempt, or failed)."""
    attempts = len(errors)
    blank = isinstance(error, BlankCutoutError) and all(BLANK_DETAIL in e for e in errors)
    if blank:
        notes.append(f"{BLANK_DETAIL} in all {attempts} attempt(s)")
    else:
        cut_short = " (retries cut short: the fetch is stopping)" if attempts <= settings.retries else ""
        notes.append(f"gave up after {attempts} attempt(s){cut_short}: " + "; ".join(errors))
    return {**record, "attempts": attempts, "status": "blank" if blank else "failed", "detail": "; ".join(notes),
            "gave_up": not blank}


def _fetch_one(source, survey: Survey, row, target: Path, settings: FetchSettings,
               abort: threading.Event | None = None) -> dict:
    """Fetch (or reuse) one source's cutout into ``target``; return its manifest record. A record
    with ``fatal`` set means the fetch cannot go on (the file cannot be written)."""
    record = {"name": row.name, "survey": survey.key, "ra_deg": row.ra_deg, "dec_deg": row.dec_deg,
              "file": target.name, "sha256": "", "status": "failed", "attempts": 0, "detail": "", "gave_up": False}
    if abort is not None and abort.is_set():
        return {**record, "detail": NOT_ATTEMPTED}
    try:
        expected = source.expected_sha256(survey, row.ra_deg, row.dec_deg)
    except PermanentFetchError as exc:
        return {**record, "detail": str(exc)}
    notes = []
    if target.is_file():
        problem = _existing_file_problem(target, survey, expected)
        if problem is None:
            return {**record, "sha256": sha256_bytes(target.read_bytes()), "status": "present"}
        # Out of the output location now: if every attempt below fails, no invalid file stays behind.
        target.unlink(missing_ok=True)
        notes.append(f"replaced an invalid earlier file ({problem})")
        log.warning("%s %s: existing %s is invalid (%s); fetching again", survey.key, row.name, target.name, problem)
    errors = []
    try:
        data = retry_policy(settings, f"{survey.key} {row.name}", abort)(_attempt, source, survey, row, errors)
    except PermanentFetchError as exc:
        return {**record, "attempts": len(errors) + 1, "detail": "; ".join([*notes, *errors, str(exc)])}
    except RetryableFetchError as exc:
        return _given_up(record, notes, errors, exc, settings)
    record["attempts"] = len(errors) + 1
    try:
        write_or_explain(target, data)
    except FetchError as exc:
        return {**record, "detail": str(exc), "fatal": True}
    if errors:
        notes.append(f"after {len(errors)} failure(s): " + "; ".join(errors))
    return {**record, "sha256": sha256_bytes(data), "status": "retried" if errors else "ok", "detail": "; ".join(notes)}


def library_versions() -> dict:
    """Versions of what shaped the fetched bytes, for the report."""
    packages = ("rgmorph", "astroquery", "astropy", "requests", "numpy", "pandas", "tenacity")
    versions = {package: importlib.metadata.version(package) for package in packages}
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A survey's manifest.csv as the later stages read it; a damaged one is set aside for the fetch rule."""
    text_columns = {column: str for column in ("name", "survey", "file", "sha256", "status", "detail")}
    return files.read_checked_csv(path, "fetch", ["name", "file", "sha256", "status", "detail"],
                                  filled_columns=["name", "status"], dtype=text_columns)


def report_path_for(manifest_path: str | Path) -> Path:
    """Where fetch_survey writes its report: ``manifest.csv`` -> ``manifest.report.json``."""
    return Path(manifest_path).with_suffix(".report.json")


class _Breaker:
    """Trips once ``limit`` sources in a row have failed for good (0: never), or at once on a fatal record."""

    def __init__(self, limit: int, label: str):
        self.limit, self.label, self.in_a_row = limit, label, 0
        self.fatal: str | None = None  # the first fatal record's detail
        self.tripped = threading.Event()
        self._lock = threading.Lock()

    def count(self, record: dict) -> None:
        if record["detail"] == NOT_ATTEMPTED:
            return
        with self._lock:
            if record.get("fatal"):
                self.fatal = self.fatal or record["detail"]
                self.tripped.set()
                return
            self.in_a_row = self.in_a_row + 1 if record["gave_up"] else 0
            if self.limit and self.in_a_row >= self.limit and not self.tripped.is_set():
                log.error("%s: %d sources in a row failed for good; not starting the rest", self.label, self.in_a_row)
                self.tripped.set()


def _fetch_all(source, sources: pd.DataFrame, survey: Survey, out_dir: Path, settings: FetchSettings,
               breaker: _Breaker, progress_every: int) -> list[dict]:
    """Every source's record, fetched ``settings.max_concurrent`` at a time."""
    started, records = time.monotonic(), []

    def fetch_and_count(row) -> dict:
        target = out_dir / cutout_filename(row.ra_deg, row.dec_deg)
        record = _fetch_one(source, survey, row, target, settings, breaker.tripped)
        breaker.count(record)  # in the worker, so that its next source already sees a trip
        return record

    with ThreadPoolExecutor(max_workers=settings.max_concurrent) as pool:
        futures = [pool.submit(fetch_and_count, row) for row in sources.itertuples(index=False)]
        for done, future in enumerate(as_completed(futures), start=1):
            records.append(future.result())
            if records[-1]["status"] == "retried":
                log.info("%s %s: fetched %s", survey.key, records[-1]["name"], records[-1]["detail"])
            if done % progress_every == 0 or done == len(futures):
                counts = pd.Series([r["status"] for r in records]).value_counts().to_dict()
                log.info("%s: %d/%d done in %.1f s %s", survey.key, done, len(futures), time.monotonic() - started, counts)
    return records


def _outcome(manifest: pd.DataFrame, breaker: _Breaker, settings: FetchSettings, origin: str,
             report_path: Path) -> tuple[str, str | None]:
    """(outcome for the report, the FetchError message when the run must stop, else None)."""
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    survey = manifest["survey"].iloc[0] if len(manifest) else ""
    if breaker.fatal:
        return "stopped: cannot write", breaker.fatal
    if breaker.tripped.is_set():
        outcome = "stopped: service failing"
        why = (f"the fetch stopped after {settings.max_consecutive_failures} sources in a row failed for good "
               f"(is {origin} down?); rerun later: the {len(manifest) - len(unusable)} valid files are kept and reused")
    elif len(unusable) and len(unusable) == len(manifest):
        outcome, why = "stopped", "no source could be fetched, so there is nothing to go on with"
    elif len(unusable) and settings.on_failure == "stop":
        outcome = "stopped"
        why = "fetch.on_failure is 'stop'; set it to 'exclude' to go on without them, or rerun later to retry them"
    else:
        return ("complete, unusable sources excluded" if len(unusable) else "complete"), None
    listing = "\n".join(f"  {r.name}: {r.status}: {r.detail}" for r in unusable.head(20).itertuples(index=False))
    if len(unusable) > 20:
        listing += f"\n  ... and {len(unusable) - 20} more (all are listed in {report_path})"
    return outcome, f"{len(unusable)} of {len(manifest)} {survey} cutouts are unusable ({why}):\n{listing}"


def fetch_survey(sources: pd.DataFrame, survey: Survey, out_dir: str | Path, manifest_path: str | Path,
                 settings: FetchSettings, progress_every: int = 50) -> pd.DataFrame:
    """Fetch one survey's cutouts for every source; write the manifest and the report; raise FetchError per settings.

    The report (``manifest.report.json``) is written whatever happens, also when the run stops
    before or while fetching, so the failures stay visible after the workflow manager removes
    the manifest of a failed job. The manifest is written only when the run goes on.
    """
    out_dir, report_path = Path(out_dir), report_path_for(manifest_path)
    origin = {"mirror": lambda: ", ".join(mirror_dirs(settings.mirror_dir)), "skyview": lambda: settings.skyview_url,
              "files": lambda: f"files named by sources.csv column {settings.file_columns.get(survey.key)!r}"
                               + (f" under {settings.files_dir}" if settings.files_dir else "")}[settings.source]()
    started, source = time.monotonic(), None

    def write_report(manifest: pd.DataFrame, outcome: str, error: str | None) -> None:
        _write_report(report_path, _report(manifest, survey, settings, outcome, error, sources=len(sources),
                                           origin=str(origin), requests=getattr(source, "requests", 0),
                                           wall_s=round(time.monotonic() - started, 3)))

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out_dir)  # temporary files of a run killed mid-write
    try:
        source = make_source(settings)
        source.preflight(survey, sources, settings)
    except FetchError as exc:
        write_report(pd.DataFrame(columns=MANIFEST_COLUMNS), "stopped: checks before fetching failed", str(exc))
        raise
    log.info("fetching %d %s cutouts (%s) from %s into %s", len(sources), survey.key, survey.skyview_name, origin, out_dir)
    breaker = _Breaker(settings.max_consecutive_failures, survey.key)
    records = _fetch_all(source, sources, survey, out_dir, settings, breaker, progress_every)
    manifest = pd.DataFrame(records).reindex(columns=MANIFEST_COLUMNS)
    manifest = manifest.set_index("name").loc[sources["name"]].reset_index()  # catalogue order
    outcome, error = _outcome(manifest, breaker, settings, origin, report_path)
    if error is None:
        try:
            write_or_explain(Path(manifest_path), manifest.to_csv(index=False).encode())
        except FetchError as exc:
            outcome, error = "stopped: cannot write", str(exc)
    write_report(manifest, outcome, error)
    if error is not None:
        raise FetchError(error)
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    if len(unusable):
        log.warning("%s: excluded %d of %d sources (fetch.on_failure is 'exclude'): %s", survey.key, len(unusable),
                    len(manifest), ", ".join(unusable["name"].head(20)))
    return manifest


def _report(manifest: pd.DataFrame, survey: Survey, settings: FetchSettings, outcome: str, error: str | None,
            **facts) -> dict:
    """The run's report: ``facts`` (sources, origin, requests, wall_s) and what ``manifest`` holds."""
    attempts = int(manifest["attempts"].sum())
    usable = manifest["status"].isin(USABLE_STATUSES)
    return {
        "survey": survey.key, "skyview_name": survey.skyview_name, "source": settings.source, **facts,
        "outcome": outcome, "error": error, "usable": int(usable.sum()),
        "counts": {status: int(n) for status, n in manifest["status"].value_counts().sort_index().items()},
        "attempts": attempts, "retries": attempts - int((manifest["attempts"] > 0).sum()),
        "unusable": [{"name": r.name, "status": r.status, "attempts": int(r.attempts), "detail": r.detail}
                     for r in manifest[~usable].itertuples(index=False)],
        "retried": [{"name": r.name, "attempts": int(r.attempts), "detail": r.detail}
                    for r in manifest[manifest["status"] == "retried"].itertuples(index=False)],
        "fetched": [{"name": r.name, "file": r.file, "sha256": r.sha256, "status": r.status}
                    for r in manifest[usable].itertuples(index=False)],
        "settings": dataclasses.asdict(settings), "environment": library_versions(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_report(report_path: Path, report: dict) -> None:
    """Write the report and log its summary; a report that cannot be written is logged, never raised."""
    try:
        write_or_explain(report_path, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    except FetchError as exc:
        log.error("%s: no fetch report: %s", report["survey"], exc)
    log.info("%s summary: %s; %s; %d attempts (%d retries), %d HTTP requests, %.1f s; report %s", report["survey"],
             report["outcome"], report["counts"], report["attempts"], report["retries"], report["requests"],
             report["wall_s"], report_path)
    for entry in report["unusable"]:
        log.warning("%s %s: %s: %s", report["survey"], entry["name"], entry["status"], entry["detail"])
