"""Stage 2: fetch FITS cutouts from NASA SkyView (through astroquery) or from a local mirror.

Every file is kept byte for byte as SkyView served it (FIRST headers hold tab characters that
astropy refuses to write back, so the raw bytes are never re-serialised), written atomically,
checked to open as a 2-D image of the requested size holding some signal, and recorded with its
sha256 in a manifest. Only such valid files ever sit in the output directory, so a rerun after a
crash (even ``kill -9``) reuses every one of them and fetches only the rest.

Per source the manifest says what happened (``status``):

- ``ok``: fetched on the first attempt; ``retried``: fetched after failed attempts (``detail``
  lists them); ``present``: a valid file from an earlier run, reused;
- ``blank``: every attempt gave an all-NaN or all-zero image (outside the survey's footprint);
  no file is kept;
- ``failed``: given up, ``detail`` says why.

``fetch.on_failure`` decides what a blank or failed source does: ``stop`` (default) ends the
run listing them, ``exclude`` goes on without them. Either way ``<manifest>.report.json`` beside
the manifest holds the counts, every failure, retries, requests, wall time and library versions.
"""

from __future__ import annotations

import dataclasses
import difflib
import gzip
import importlib.metadata
import io
import logging
import platform
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from rgmorph.files import remove_stale_parts, sha256_bytes, write_bytes_atomic, write_csv_atomic, write_json_atomic

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
BLANK_DETAIL = "outside the survey footprint (all NaN/zero)"
NOT_ATTEMPTED = "not attempted"


class FetchError(RuntimeError):
    """Fetching cannot go on, or some sources failed for good (the message lists them)."""


class RetryableFetchError(Exception):
    """A failure worth retrying: network errors, server errors, damaged or wrong files."""


class PermanentFetchError(Exception):
    """A failure that a retry cannot fix (unknown survey, no image at this position)."""


class BlankCutoutError(RetryableFetchError):
    """An all-NaN/all-zero image: outside the footprint, or a glitch that a retry may fix."""


@dataclass(frozen=True)
class Survey:
    key: str  # short name used in paths, e.g. FIRST
    skyview_name: str  # SkyView's survey name, e.g. 'VLA FIRST (1.4 GHz)'
    pixels: int = 150


@dataclass(frozen=True)
class FetchSettings:
    source: str = "mirror"  # 'mirror' or 'skyview'
    mirror_dir: str | None = None
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

    def __post_init__(self) -> None:
        problems = []
        if self.source not in ("mirror", "skyview"):
            problems.append(f"fetch.source must be 'mirror' or 'skyview', not {self.source!r}")
        if self.on_failure not in ON_FAILURE_CHOICES:
            problems.append(f"fetch.on_failure must be one of {list(ON_FAILURE_CHOICES)}, not {self.on_failure!r}")
        for key in ("retries", "max_consecutive_failures"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                problems.append(f"fetch.{key} must be an integer >= 0, not {getattr(self, key)!r}")
        if not isinstance(self.max_concurrent, int) or self.max_concurrent < 1:
            problems.append(f"fetch.max_concurrent must be an integer >= 1, not {self.max_concurrent!r}")
        for key in ("timeout_s", "backoff_s", "max_backoff_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "timeout_s" and value == 0):
                problems.append(f"fetch.{key} must be a positive number, not {value!r}")
        rate = self.max_requests_per_s
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0):
            problems.append(f"fetch.max_requests_per_s must be a positive number or null, not {rate!r}")
        if problems:
            raise FetchError("invalid fetch settings: " + "; ".join(problems))

    def backoff(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure: doubling, capped."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (failed_attempts - 1))


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


class MirrorSource:
    """Cutouts from a directory laid out like SkyView's mirror: index.csv + <survey>/<ra><dec>.fits.gz."""

    def __init__(self, mirror_dir: str | Path):
        self.root = Path(mirror_dir)
        self.index = read_mirror_index(self.root)
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
        problems = []
        for row in sources.itertuples(index=False):
            try:
                entry = self._locate(survey, row.ra_deg, row.dec_deg)
            except PermanentFetchError:
                continue  # a position the mirror lacks is that source's own failure (fetch.on_failure)
            where = f"index.csv line {entry.name + 2} ({entry['file']})"
            path = self.root / entry["file"]
            if not path.is_file():
                problems.append(f"{where}: file {path} is missing")
                continue
            try:
                data = _read_mirror_file(path)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                problems.append(f"{where}: cannot read {path} ({exc})")
                continue
            if sha256_bytes(data) != entry["sha256"]:
                problems.append(f"{where}: sha256 of the (uncompressed) file is {sha256_bytes(data)[:12]}..., "
                                f"the index says {entry['sha256'][:12]}...")
        if problems:
            listing = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
            raise FetchError(
                f"mirror {self.root} is damaged: {len(problems)} {survey.key} cutout(s) that the catalogue needs "
                f"cannot be used:\n  {listing}\nRe-copy these files from the original mirror (or fix index.csv), then rerun."
            )

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return self._locate(survey, ra_deg, dec_deg)["sha256"]

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        row = self._locate(survey, ra_deg, dec_deg)
        path = self.root / row["file"]
        if not path.is_file():
            raise PermanentFetchError(f"mirror index line {row.name + 2} points to a missing file {path}")
        data = _read_mirror_file(path)
        if sha256_bytes(data) != row["sha256"]:
            raise PermanentFetchError(f"mirror file {path} does not match the sha256 in {self.root / 'index.csv'}")
        return data


def _read_mirror_file(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


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
    return index


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

    def __init__(self, url: str, timeout_s: float, limiter: RateLimiter):
        self.url = url
        self.timeout_s = timeout_s
        self.limiter = limiter
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

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        """Read the form page (retried like any request): stop now if the service is unreachable or
        does not offer the survey, rather than after every source has burnt its retries."""
        import requests

        errors = []
        for attempt in range(1, settings.retries + 2):
            try:
                surveys = self._client().survey_dict
                break
            except RetryableFetchError as exc:
                errors.append(str(exc))
            except requests.RequestException as exc:
                errors.append(_describe(exc))
            except Exception as exc:  # an odd page: BeautifulSoup finds no <select> ids etc.
                errors.append(f"unexpected form page ({type(exc).__name__}: {exc})")
            if attempt <= settings.retries:
                log.info("%s: SkyView form page, attempt %d failed (%s); retrying in %.1f s", survey.key, attempt,
                         errors[-1], settings.backoff(attempt))
                time.sleep(settings.backoff(attempt))
        else:
            raise FetchError(
                f"cannot reach SkyView at {self.url}: all {len(errors)} attempts to read its form page failed "
                f"(last: {errors[-1]}). Check fetch.skyview_url (or ${SKYVIEW_URL_ENVIRONMENT_VARIABLE}) and the "
                "network, then rerun: cutouts fetched earlier are kept."
            )
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
        import requests

        client = self._client()
        client.last_results_page = client.last_response = None
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
        try:
            response = client._request("GET", urls[0])
            response.raise_for_status()
        except requests.RequestException as exc:
            raise RetryableFetchError(f"download: {_describe(exc)}") from None
        return response.content


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
    if settings.source == "mirror":
        if not settings.mirror_dir:
            raise FetchError(f"fetch.source is 'mirror' but no mirror directory is set (fetch.mirror_dir or ${MIRROR_ENVIRONMENT_VARIABLE})")
        return MirrorSource(settings.mirror_dir)
    if settings.source == "skyview":
        return SkyViewSource(settings.skyview_url, settings.timeout_s, RateLimiter(settings.max_requests_per_s))
    raise FetchError(f"fetch.source must be 'mirror' or 'skyview', not {settings.source!r}")


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


def _fetch_one(source, survey: Survey, row, target: Path, settings: FetchSettings,
               abort: threading.Event | None = None) -> dict:
    record = {"name": row.name, "survey": survey.key, "ra_deg": row.ra_deg, "dec_deg": row.dec_deg,
              "file": target.name, "sha256": "", "status": "", "attempts": 0, "detail": "", "gave_up": False}
    if abort is not None and abort.is_set():
        return {**record, "status": "failed", "detail": NOT_ATTEMPTED}
    try:
        expected = source.expected_sha256(survey, row.ra_deg, row.dec_deg)
    except PermanentFetchError as exc:
        return {**record, "status": "failed", "detail": str(exc)}
    replaced = ""
    if target.is_file():
        problem = _existing_file_problem(target, survey, expected)
        if problem is None:
            return {**record, "sha256": sha256_bytes(target.read_bytes()), "status": "present"}
        # Out of the output location now: if every attempt below fails, no invalid file stays behind.
        target.unlink(missing_ok=True)
        replaced = f"replaced an invalid earlier file ({problem})"
        log.warning("%s %s: existing %s is invalid (%s); fetching again", survey.key, row.name, target.name, problem)
    notes = [replaced] if replaced else []
    errors = []
    for attempt in range(1, settings.retries + 2):
        record["attempts"] = attempt
        try:
            data = source.get(survey, row.ra_deg, row.dec_deg)
            check_cutout(data, survey.pixels)
        except PermanentFetchError as exc:
            return {**record, "status": "failed", "detail": "; ".join([*notes, *errors, str(exc)])}
        except RetryableFetchError as exc:
            errors.append(f"attempt {attempt}: {exc}")
            if attempt <= settings.retries and not (abort is not None and abort.is_set()):
                delay = settings.backoff(attempt)
                log.info("%s %s: attempt %d failed (%s); retrying in %.2f s", survey.key, row.name, attempt, exc, delay)
                time.sleep(delay)
                continue
            blank = isinstance(exc, BlankCutoutError)
            if blank and all(BLANK_DETAIL in error for error in errors):
                notes.append(f"{BLANK_DETAIL} in all {attempt} attempt(s)")
            else:
                cut_short = " (retries cut short: the fetch is stopping)" if attempt <= settings.retries else ""
                notes.append(f"gave up after {attempt} attempt(s){cut_short}: " + "; ".join(errors))
            return {**record, "status": "blank" if blank else "failed", "detail": "; ".join(notes), "gave_up": not blank}
        write_bytes_atomic(target, data)
        if errors:
            notes.append(f"after {len(errors)} failure(s): " + "; ".join(errors))
        return {**record, "sha256": sha256_bytes(data), "status": "retried" if errors else "ok", "detail": "; ".join(notes)}
    raise AssertionError("unreachable: the last attempt always returns")


def library_versions() -> dict:
    """Versions of what shaped the fetched bytes, for the report."""
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("rgmorph", "astroquery", "astropy", "requests", "numpy", "pandas"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def report_path_for(manifest_path: str | Path) -> Path:
    """Where fetch_survey writes its report: ``manifest.csv`` -> ``manifest.report.json``."""
    return Path(manifest_path).with_suffix(".report.json")


class _Breaker:
    """Trips once ``limit`` sources in a row have failed for good (0: never)."""

    def __init__(self, limit: int, label: str):
        self.limit, self.label, self.in_a_row = limit, label, 0
        self.tripped = threading.Event()
        self._lock = threading.Lock()

    def count(self, record: dict) -> None:
        if record["detail"] == NOT_ATTEMPTED:
            return
        with self._lock:
            self.in_a_row = self.in_a_row + 1 if record["gave_up"] else 0
            if self.limit and self.in_a_row >= self.limit and not self.tripped.is_set():
                log.error("%s: %d sources in a row failed for good; not starting the rest", self.label, self.in_a_row)
                self.tripped.set()


def fetch_survey(sources: pd.DataFrame, survey: Survey, out_dir: str | Path, manifest_path: str | Path,
                 settings: FetchSettings, progress_every: int = 50) -> pd.DataFrame:
    """Fetch one survey's cutouts for every source; write the manifest and the report; raise FetchError per settings.

    The report (``<manifest>.report.json``) is written in every case, also when the run stops,
    so the failures stay visible after the workflow manager removes the manifest of a failed job.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = report_path_for(manifest_path)
    remove_stale_parts(out_dir)  # temporary files of a run killed mid-write
    source = make_source(settings)
    origin = settings.mirror_dir if settings.source == "mirror" else settings.skyview_url
    source.preflight(survey, sources, settings)
    log.info("fetching %d %s cutouts (%s) from %s into %s", len(sources), survey.key, survey.skyview_name, origin, out_dir)
    started = time.monotonic()
    records, breaker = [], _Breaker(settings.max_consecutive_failures, survey.key)

    def fetch_and_count(row) -> dict:
        record = _fetch_one(source, survey, row, out_dir / cutout_filename(row.ra_deg, row.dec_deg), settings,
                            breaker.tripped)
        breaker.count(record)  # in the worker, so that its next source already sees a trip
        return record

    with ThreadPoolExecutor(max_workers=max(1, settings.max_concurrent)) as pool:
        futures = [pool.submit(fetch_and_count, row) for row in sources.itertuples(index=False)]
        for done, future in enumerate(as_completed(futures), start=1):
            record = future.result()
            records.append(record)
            if record["status"] == "retried":
                log.info("%s %s: fetched %s", survey.key, record["name"], record["detail"])
            if done % progress_every == 0 or done == len(futures):
                counts = pd.Series([r["status"] for r in records]).value_counts().to_dict()
                log.info("%s: %d/%d done in %.1f s %s", survey.key, done, len(futures), time.monotonic() - started, counts)
    wall_s = time.monotonic() - started
    manifest = pd.DataFrame(records).reindex(columns=MANIFEST_COLUMNS)
    manifest = manifest.set_index("name").loc[sources["name"]].reset_index()  # catalogue order
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    stopped = breaker.tripped.is_set()
    if stopped:
        outcome = "stopped: service failing"
    elif len(unusable) and (settings.on_failure == "stop" or len(unusable) == len(manifest)):
        outcome = "stopped"
    elif len(unusable):
        outcome = "complete, unusable sources excluded"
    else:
        outcome = "complete"
    report = _report(manifest, survey, settings, origin, source, wall_s, outcome)
    write_json_atomic(report_path, report)
    log.info("%s summary: %s; %d attempts (%d retries), %d HTTP requests, %.1f s; report %s", survey.key,
             report["counts"], report["attempts"], report["retries"], report["requests"], wall_s, report_path)
    for row in unusable.itertuples(index=False):
        log.warning("%s %s: %s: %s", survey.key, row.name, row.status, row.detail)
    if outcome.startswith("stopped"):
        listing = "\n".join(f"  {r.name}: {r.status}: {r.detail}" for r in unusable.head(20).itertuples(index=False))
        if len(unusable) > 20:
            listing += f"\n  ... and {len(unusable) - 20} more (all are listed in {report_path})"
        if stopped:
            why = (f"the fetch stopped after {settings.max_consecutive_failures} sources in a row failed for good "
                   f"(is {origin} down?); rerun later: the {report['usable']} valid files are kept and reused")
        elif len(unusable) == len(manifest):
            why = "no source could be fetched, so there is nothing to go on with"
        else:
            why = "fetch.on_failure is 'stop'; set it to 'exclude' to go on without them, or rerun later to retry them"
        raise FetchError(f"{len(unusable)} of {len(manifest)} {survey.key} cutouts are unusable ({why}):\n{listing}")
    if len(unusable):
        log.warning("%s: excluded %d of %d sources (fetch.on_failure is 'exclude'): %s", survey.key, len(unusable),
                    len(manifest), ", ".join(unusable["name"].head(20)))
    write_csv_atomic(manifest_path, manifest)
    return manifest


def _report(manifest: pd.DataFrame, survey: Survey, settings: FetchSettings, origin, source, wall_s: float,
            outcome: str) -> dict:
    attempts = int(manifest["attempts"].sum())
    attempted = int((manifest["attempts"] > 0).sum())
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    return {
        "survey": survey.key,
        "skyview_name": survey.skyview_name,
        "source": settings.source,
        "from": str(origin),
        "outcome": outcome,
        "sources": int(len(manifest)),
        "usable": int(manifest["status"].isin(USABLE_STATUSES).sum()),
        "counts": {status: int(n) for status, n in manifest["status"].value_counts().sort_index().items()},
        "attempts": attempts,
        "retries": attempts - attempted,
        "requests": int(source.requests),
        "wall_s": round(wall_s, 3),
        "unusable": [{"name": r.name, "status": r.status, "attempts": int(r.attempts), "detail": r.detail}
                     for r in unusable.itertuples(index=False)],
        "retried": [{"name": r.name, "attempts": int(r.attempts), "detail": r.detail}
                    for r in manifest[manifest["status"] == "retried"].itertuples(index=False)],
        "settings": dataclasses.asdict(settings),
        "environment": library_versions(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
