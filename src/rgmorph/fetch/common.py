"""What every cutout source and the fetch loop share: the errors, the settings, the checks a
cutout must pass, the retry policy, the rate limit and the atomic write."""

from __future__ import annotations

import errno
import io
import logging
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tenacity
from astropy.io import fits

from rgmorph import files

log = logging.getLogger(__name__)

ON_FAILURE_CHOICES = ("stop", "exclude")
SOURCE_CHOICES = ("mirror", "skyview", "files")
BLANK_DETAIL = "outside the survey footprint (all NaN/zero)"
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
