"""Stage 2: fetch FITS cutouts from NASA SkyView (through astroquery) or from a local mirror.

Every file is kept byte for byte as SkyView served it (FIRST headers hold tab characters that
astropy refuses to write back, so the raw bytes are never re-serialised), written atomically,
checked to open as a 2-D image of the requested size and recorded with its sha256 in a manifest.
"""

from __future__ import annotations

import gzip
import io
import logging
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import fits

from rgmorph.io import sha256_bytes, sha256_file, write_bytes_atomic, write_csv_atomic

log = logging.getLogger(__name__)

MIRROR_ENVIRONMENT_VARIABLE = "RGMORPH_SKYVIEW_MIRROR"
SKYVIEW_URL_ENVIRONMENT_VARIABLE = "RGMORPH_SKYVIEW_URL"
MANIFEST_COLUMNS = ["name", "survey", "ra_deg", "dec_deg", "file", "sha256", "status", "attempts", "detail"]
# A mirror position matches a catalogue position when closer than this: the shared mirror's
# index rounds RA to 1e-3 deg (up to 1.8 arcsec off), still within one FIRST pixel.
MIRROR_MATCH_ARCSEC = 3.0


class FetchError(RuntimeError):
    """Fetching cannot go on, or some sources failed for good (the message lists them)."""


class RetryableFetchError(Exception):
    """A failure worth retrying: network errors, server errors, damaged or wrong files."""


class PermanentFetchError(Exception):
    """A failure that a retry cannot fix (unknown survey, no image at this position)."""


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
    max_concurrent: int = 4
    max_requests_per_s: float | None = None
    on_failure: str = "stop"  # 'stop' or 'exclude'


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
                image = next((hdu.data for hdu in hdus if hdu.data is not None and hdu.data.ndim == 2), None)
                image = None if image is None else np.array(image, dtype=np.float32)
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
        index_path = self.root / "index.csv"
        if not index_path.is_file():
            raise FetchError(
                f"mirror {self.root} has no index.csv; point fetch.mirror_dir (or ${MIRROR_ENVIRONMENT_VARIABLE}) "
                "at a directory laid out like shared/skyview-mirror"
            )
        self.index = pd.read_csv(index_path)
        missing = {"survey", "ra_deg", "dec_deg", "file", "sha256"} - set(self.index.columns)
        if missing:
            raise FetchError(f"mirror index {index_path} lacks column(s) {sorted(missing)}")
        self._coords = {}

    def _locate(self, survey: Survey, ra_deg: float, dec_deg: float) -> pd.Series:
        if survey.skyview_name not in self._coords:
            rows = self.index[self.index["survey"] == survey.skyview_name].reset_index(drop=True)
            if rows.empty:
                raise PermanentFetchError(f"mirror {self.root} holds no '{survey.skyview_name}' cutouts")
            self._coords[survey.skyview_name] = (rows, SkyCoord(rows["ra_deg"].to_numpy() * u.deg, rows["dec_deg"].to_numpy() * u.deg))
        rows, coords = self._coords[survey.skyview_name]
        separation = coords.separation(SkyCoord(ra_deg * u.deg, dec_deg * u.deg)).arcsec
        nearest = int(np.argmin(separation))
        if separation[nearest] > MIRROR_MATCH_ARCSEC:
            raise PermanentFetchError(
                f"mirror {self.root} has no '{survey.skyview_name}' cutout within {MIRROR_MATCH_ARCSEC} arcsec"
            )
        return rows.iloc[nearest]

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return self._locate(survey, ra_deg, dec_deg)["sha256"]

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        row = self._locate(survey, ra_deg, dec_deg)
        path = self.root / row["file"]
        if not path.is_file():
            raise PermanentFetchError(f"mirror index row for {row['file']} points to a missing file {path}")
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
        if sha256_bytes(data) != row["sha256"]:
            raise PermanentFetchError(f"mirror file {path} does not match the sha256 in {self.root / 'index.csv'}")
        return data


class SkyViewSource:
    """Cutouts from SkyView (or a service speaking its protocol) through astroquery's client."""

    def __init__(self, url: str, timeout_s: float, limiter: RateLimiter):
        self.url = url
        self.timeout_s = timeout_s
        self.limiter = limiter
        self._local = threading.local()

    def _client(self):
        if not hasattr(self._local, "client"):
            self._local.client = _make_skyview_client(self.url, self.timeout_s, self.limiter)
        return self._local.client

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> None:
        return None  # SkyView publishes no checksums

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        import requests

        client = self._client()
        # A SkyCoord, not a string: astroquery reads 'hh mm ss +dd mm ss' as degrees.
        position = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame="fk5")
        try:
            urls = client.get_image_list(position=position, survey=survey.skyview_name,
                                         pixels=survey.pixels, scaling="Linear", cache=False)
        except ValueError as exc:  # astroquery: survey not offered by this service
            raise PermanentFetchError(f"SkyView at {self.url} rejects survey '{survey.skyview_name}': {exc}") from None
        except requests.HTTPError as exc:
            raise RetryableFetchError(f"query failed: HTTP {exc.response.status_code}") from None
        except requests.RequestException as exc:
            raise RetryableFetchError(f"query failed: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # an error page instead of the form: astroquery's parser trips over it
            raise RetryableFetchError(f"query failed: unexpected response from {self.url} ({type(exc).__name__}: {exc})") from None
        if not urls:
            raise PermanentFetchError("SkyView returned no image for this position")
        try:
            response = client._request("GET", urls[0], cache=False)
            response.raise_for_status()
        except requests.HTTPError as exc:
            raise RetryableFetchError(f"download failed: HTTP {exc.response.status_code}") from None
        except requests.RequestException as exc:
            raise RetryableFetchError(f"download failed: {type(exc).__name__}: {exc}") from None
        return response.content


def _make_skyview_client(url: str, timeout_s: float, limiter: RateLimiter):
    from astroquery.skyview import SkyViewClass

    class TimedSkyView(SkyViewClass):
        """astroquery's client, with a timeout and a rate limit on every request and no disk cache."""

        def _request(self, method, url, **kwargs):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout_s
            kwargs["cache"] = False
            limiter.wait()
            return super()._request(method, url, **kwargs)

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


def _fetch_one(source, survey: Survey, row, target: Path, settings: FetchSettings) -> dict:
    record = {"name": row.name, "survey": survey.key, "ra_deg": row.ra_deg, "dec_deg": row.dec_deg,
              "file": target.name, "sha256": "", "status": "", "attempts": 0, "detail": ""}
    try:
        expected = source.expected_sha256(survey, row.ra_deg, row.dec_deg)
    except PermanentFetchError as exc:
        return {**record, "status": "failed", "detail": str(exc)}
    if target.is_file():
        data = target.read_bytes()
        try:
            image = check_fits_image(data, survey.pixels)
            if expected and sha256_bytes(data) != expected:
                raise RetryableFetchError("sha256 differs from the mirror's")
            return {**record, "sha256": sha256_bytes(data), "status": "blank" if is_blank(image) else "present",
                    "detail": "outside the survey footprint (all NaN/zero)" if is_blank(image) else ""}
        except RetryableFetchError as exc:
            log.warning("%s %s: existing %s is invalid (%s); fetching again", survey.key, row.name, target.name, exc)
    last_error = ""
    for attempt in range(1, settings.retries + 2):
        record["attempts"] = attempt
        try:
            data = source.get(survey, row.ra_deg, row.dec_deg)
            image = check_fits_image(data, survey.pixels)
        except PermanentFetchError as exc:
            return {**record, "status": "failed", "detail": str(exc)}
        except RetryableFetchError as exc:
            last_error = str(exc)
            if attempt <= settings.retries:
                delay = settings.backoff_s * 2 ** (attempt - 1)
                log.info("%s %s: attempt %d failed (%s); retrying in %.1f s", survey.key, row.name, attempt, exc, delay)
                time.sleep(delay)
            continue
        write_bytes_atomic(target, data)
        status = "blank" if is_blank(image) else ("retried" if attempt > 1 else "ok")
        detail = "outside the survey footprint (all NaN/zero)" if status == "blank" else (
            f"after {attempt - 1} failure(s): {last_error}" if attempt > 1 else "")
        return {**record, "sha256": sha256_bytes(data), "status": status, "detail": detail}
    return {**record, "status": "failed", "detail": f"gave up after {record['attempts']} attempts: {last_error}"}


USABLE_STATUSES = ("ok", "retried", "present")


def fetch_survey(sources: pd.DataFrame, survey: Survey, out_dir: str | Path, manifest_path: str | Path,
                 settings: FetchSettings, progress_every: int = 50) -> pd.DataFrame:
    """Fetch one survey's cutouts for every source; write the manifest; raise FetchError per settings."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = make_source(settings)
    log.info("fetching %d %s cutouts (%s) from %s into %s", len(sources), survey.key, survey.skyview_name,
             settings.mirror_dir if settings.source == "mirror" else settings.skyview_url, out_dir)
    started = time.monotonic()
    records = []
    with ThreadPoolExecutor(max_workers=max(1, settings.max_concurrent)) as pool:
        futures = [pool.submit(_fetch_one, source, survey, row, out_dir / cutout_filename(row.ra_deg, row.dec_deg), settings)
                   for row in sources.itertuples(index=False)]
        for done, future in enumerate(as_completed(futures), start=1):
            records.append(future.result())
            if done % progress_every == 0 or done == len(futures):
                counts = pd.Series([r["status"] for r in records]).value_counts().to_dict()
                log.info("%s: %d/%d done in %.1f s %s", survey.key, done, len(futures), time.monotonic() - started, counts)
    manifest = pd.DataFrame(records, columns=MANIFEST_COLUMNS)
    manifest = manifest.set_index("name").loc[sources["name"]].reset_index()  # catalogue order
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    summary = manifest["status"].value_counts().to_dict()
    log.info("%s summary: %s", survey.key, summary)
    for row in unusable.itertuples(index=False):
        log.warning("%s %s: %s: %s", survey.key, row.name, row.status, row.detail)
    if len(unusable) and settings.on_failure == "stop":
        listing = "\n".join(f"  {r.name}: {r.status}: {r.detail}" for r in unusable.head(20).itertuples(index=False))
        if len(unusable) > 20:
            listing += f"\n  ... and {len(unusable) - 20} more (all are listed in the log above)"
        raise FetchError(
            f"{len(unusable)} of {len(manifest)} {survey.key} cutouts are unusable (fetch.on_failure is 'stop'; "
            f"set it to 'exclude' to go on without them):\n{listing}"
        )
    write_csv_atomic(manifest_path, manifest)
    return manifest
