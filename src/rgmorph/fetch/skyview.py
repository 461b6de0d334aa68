"""Cutouts from NASA SkyView (or a service speaking its protocol) through astroquery's client."""

from __future__ import annotations

import difflib
import threading

import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from rgmorph.fetch.common import (MAX_CUTOUT_BYTES, FetchError, FetchSettings, PermanentFetchError, RateLimiter,
                                  RetryableFetchError, Survey, retry_policy, too_large)

SKYVIEW_URL_ENVIRONMENT_VARIABLE = "RGMORPH_SKYVIEW_URL"


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
