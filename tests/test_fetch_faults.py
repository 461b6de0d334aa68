"""Fetching through astroquery's real client from the local stand-in SkyView, with faults switched on per request.

Each fault hits one request; the fetch must retry where that helps, never leave a partial or
invalid file in the output directory, and say per source what happened (manifest ``status`` and
``detail``) and for the whole run (``<manifest>.report.json`` and the log).
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import time

import pandas as pd
import pytest
from astropy.config import paths
from astroquery import cache_conf

from rgmorph import files
from rgmorph.fetch import (FetchError, FetchSettings, MirrorSource, PermanentFetchError, RateLimiter,
                           RetryableFetchError, SkyViewSource, Survey, check_cutout, cutout_filename,
                           fetch_survey, report_path_for, retry_policy)
from rgmorph.fetch.run import _fetch_one
from skyview_standin import FaultPlan, FaultRule, StandInSkyView
from conftest import QUICKSTART_MIRROR

FIRST = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
# The mirror's index rounds RA to 1e-3 deg, so a catalogue position can sit up to 1.8 arcsec from it.
MATCH_ARCSEC = 3.0
TIMEOUT_S = 1.0
SLOW_S = 1.5  # longer than TIMEOUT_S: a 'slow' fault is a timeout
ERROR_PAGE_TEXT = "SkyView error Error Internal error in SkyView; try again later."


@pytest.fixture(scope="module")
def sources(quickstart_sources) -> pd.DataFrame:
    return quickstart_sources.head(3).reset_index(drop=True)


@pytest.fixture(scope="module")
def mirror() -> MirrorSource:
    return MirrorSource(QUICKSTART_MIRROR)


def _mirror_file(mirror: MirrorSource, row) -> str:
    """The index 'file' of a source's FIRST cutout: how a FaultRule targets that source."""
    return mirror._locate(FIRST, row.ra_deg, row.dec_deg)["file"]


def _settings(url: str, **overrides) -> FetchSettings:
    options = dict(source="skyview", skyview_url=url, timeout_s=TIMEOUT_S, retries=2, backoff_s=0.01,
                   max_concurrent=1, on_failure="exclude")
    return FetchSettings(**{**options, **overrides})


def _service(*rules: FaultRule, **options) -> StandInSkyView:
    return StandInSkyView(QUICKSTART_MIRROR, FaultPlan(rules), match_radius_arcsec=MATCH_ARCSEC, **options)


def _assert_only_valid_cutouts(out_dir, mirror: MirrorSource, sources: pd.DataFrame, names: set[str]) -> None:
    """The output directory holds exactly the cutouts of ``names``, each byte-identical to the mirror's."""
    expected = {cutout_filename(r.ra_deg, r.dec_deg): r for r in sources.itertuples(index=False) if r.name in names}
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(expected)
    for filename, row in expected.items():
        data = (out_dir / filename).read_bytes()
        check_cutout(data, FIRST.pixels)
        assert data == mirror.get(FIRST, row.ra_deg, row.dec_deg)


# --------------------------------------------------------------------------- one transient fault per request

# (fault, stage, reason in the manifest). The form page is read once before any cutout (the
# survey check), so form faults skip that first read and hit the query itself.
TRANSIENT = [
    *[(f"http_{code}", stage, f"{step}: HTTP {code}")
      for code in (500, 503, 404) for stage, step in (("form", "query"), ("results", "query"), ("fits", "download"))],
    *[("reset", stage, f"{step}: connection reset (ConnectionError)")
      for stage, step in (("form", "query"), ("results", "query"), ("fits", "download"))],
    *[("slow", stage, f"{step}: timed out (ReadTimeout)")
      for stage, step in (("form", "query"), ("results", "query"), ("fits", "download"))],
    ("html_200", "form", f"query: unexpected page ({ERROR_PAGE_TEXT!r}; AttributeError)"),
    ("html_200", "results", f"query: the results page holds no FITS link ({ERROR_PAGE_TEXT})"),
    ("html_200", "fits", "not a FITS file (starts with '<html><head><title>SkyView error</title></head><body><h2>Err')"),
    ("truncated", "fits", "truncated FITS file ({half} bytes; its header declares {full})"),
    ("dropped", "fits", "download: connection dropped mid-transfer (ChunkedEncodingError)"),
    ("wrong_shape", "fits", "image is 100x100, expected 150x150"),
    ("all_nan", "fits", "outside the survey footprint (all NaN/zero)"),
    ("all_zero", "fits", "outside the survey footprint (all NaN/zero)"),
]


@pytest.mark.parametrize("kind, stage, reason", TRANSIENT, ids=[f"{k}-{s}" for k, s, _ in TRANSIENT])
def test_one_faulty_request_is_retried_and_recorded(tmp_path, sources, mirror, kind, stage, reason):
    row = sources.iloc[0]
    file = None if stage == "form" else _mirror_file(mirror, row)
    rule = FaultRule(kind, stage=stage, file=file, count=1, skip=1 if stage == "form" else 0, delay_s=SLOW_S)
    with _service(rule) as service:
        manifest = fetch_survey(sources.head(1), FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(service.url))
        applied = [fault.kind for _, _, fault in service.faults.applied]
    full = len(mirror.get(FIRST, row.ra_deg, row.dec_deg))
    assert applied == [kind]
    assert manifest[["status", "attempts"]].values.tolist() == [["retried", 2]]
    assert manifest["detail"].iloc[0] == "after 1 failure(s): attempt 1: " + reason.format(half=full // 2, full=full)
    _assert_only_valid_cutouts(tmp_path / "out", mirror, sources, {row["name"]})
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())
    assert (report["counts"], report["attempts"], report["retries"], report["outcome"]) == ({"retried": 1}, 2, 1, "complete")


@pytest.mark.parametrize("stage", ["form", "results", "fits"])
def test_a_redirect_is_followed_without_a_retry(tmp_path, sources, mirror, stage):
    rule = FaultRule("redirect", stage=stage, count=1, skip=1 if stage == "form" else 0)
    with _service(rule) as service:
        manifest = fetch_survey(sources.head(1), FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(service.url))
        redirects = service.count(stage, status=302)
    assert redirects == 1
    assert manifest[["status", "attempts", "detail"]].fillna("").values.tolist() == [["ok", 1, ""]]
    _assert_only_valid_cutouts(tmp_path / "out", mirror, sources, {sources["name"].iloc[0]})


def test_a_slow_answer_within_the_timeout_is_not_a_failure(tmp_path, sources, mirror):
    rule = FaultRule("slow", stage="fits", count=1, delay_s=0.3)
    with _service(rule) as service:
        manifest = fetch_survey(sources.head(1), FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(service.url))
    assert manifest[["status", "attempts"]].values.tolist() == [["ok", 1]]


# --------------------------------------------------------------------------- faults that do not go away


def test_a_source_failing_for_good_is_excluded_with_a_warning_and_a_count(tmp_path, sources, mirror, caplog):
    victim = sources.iloc[1]
    rule = FaultRule("http_503", stage="fits", file=_mirror_file(mirror, victim), count=None)
    with _service(rule) as service, caplog.at_level(logging.WARNING, logger="rgmorph.fetch"):
        manifest = fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(service.url))
        requests_sent = service.count()
    assert manifest["status"].tolist() == ["ok", "failed", "ok"]
    assert manifest["attempts"].tolist() == [1, 3, 1]
    assert manifest["detail"].iloc[1] == ("gave up after 3 attempt(s): attempt 1: download: HTTP 503; "
                                          "attempt 2: download: HTTP 503; attempt 3: download: HTTP 503")
    assert pd.read_csv(tmp_path / "manifest.csv")["status"].tolist() == ["ok", "failed", "ok"]
    _assert_only_valid_cutouts(tmp_path / "out", mirror, sources, {sources["name"].iloc[0], sources["name"].iloc[2]})
    assert f"FIRST: excluded 1 of 3 sources (fetch.on_failure is 'exclude'): {victim['name']}" in caplog.messages
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())
    assert report["outcome"] == "complete, unusable sources excluded"
    assert (report["counts"], report["usable"], report["attempts"], report["retries"]) == ({"failed": 1, "ok": 2}, 2, 5, 2)
    assert report["requests"] == requests_sent == 1 + 5 * 3  # survey check + 3 requests per attempt
    assert [entry["name"] for entry in report["unusable"]] == [victim["name"]]
    assert report["environment"]["astroquery"] == "0.4.11" and report["wall_s"] > 0


def test_on_failure_stop_lists_the_failures_keeps_good_files_and_the_rerun_fetches_only_the_rest(
        tmp_path, sources, mirror):
    victim = sources.iloc[1]
    rule = FaultRule("http_404", stage="fits", file=_mirror_file(mirror, victim), count=None)
    settings = _settings("", on_failure="stop")
    with _service(rule) as service:
        with pytest.raises(FetchError) as error:
            fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                         FetchSettings(**{**settings.__dict__, "skyview_url": service.url}))
    assert str(error.value) == (
        "1 of 3 FIRST cutouts are unusable (fetch.on_failure is 'stop'; set it to 'exclude' to go on without them, "
        f"or rerun later to retry them):\n  {victim['name']}: failed: gave up after 3 attempt(s): attempt 1: download: "
        "HTTP 404; attempt 2: download: HTTP 404; attempt 3: download: HTTP 404")
    assert not (tmp_path / "manifest.csv").exists()  # nothing downstream may run on it
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())
    assert report["outcome"] == "stopped" and [e["name"] for e in report["unusable"]] == [victim["name"]]
    assert report["error"] == str(error.value)
    assert [(e["name"], e["status"]) for e in report["fetched"]] == [(n, "ok") for n in sources["name"] if n != victim["name"]]
    _assert_only_valid_cutouts(tmp_path / "out", mirror, sources, {sources["name"].iloc[0], sources["name"].iloc[2]})

    with _service() as service:  # the service is healthy again
        manifest = fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                                FetchSettings(**{**settings.__dict__, "skyview_url": service.url}))
        fits_requests = service.count("fits")
    assert manifest["status"].tolist() == ["present", "ok", "present"]
    assert fits_requests == 1  # nothing fetched twice
    _assert_only_valid_cutouts(tmp_path / "out", mirror, sources, set(sources["name"]))


def test_a_cutout_blank_in_every_attempt_is_reported_and_not_kept(tmp_path, sources, mirror):
    rule = FaultRule("all_nan", stage="fits", count=None)
    with _service(rule) as service:
        with pytest.raises(FetchError, match=r"1 of 1 FIRST cutouts are unusable \(no source could be fetched"):
            fetch_survey(sources.head(1), FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                         _settings(service.url, on_failure="exclude"))
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())
    assert report["unusable"] == [{"name": sources["name"].iloc[0], "status": "blank", "attempts": 3,
                                   "detail": "outside the survey footprint (all NaN/zero) in all 3 attempt(s)"}]
    assert list((tmp_path / "out").iterdir()) == []


def test_an_invalid_earlier_file_is_removed_even_when_the_refetch_fails(tmp_path, sources, mirror):
    row = sources.iloc[0]
    good = mirror.get(FIRST, row.ra_deg, row.dec_deg)
    header_end = good.index(b"END" + b" " * 77) + 80
    header_length = -(-header_end // 2880) * 2880
    out = tmp_path / "out"
    out.mkdir()
    target = out / cutout_filename(row.ra_deg, row.dec_deg)
    target.write_bytes(good[:header_length] + bytes(len(good) - header_length))  # all-zero image: blank
    with _service(FaultRule("http_503", stage="fits", file=_mirror_file(mirror, row), count=None)) as service:
        manifest = fetch_survey(sources.head(2), FIRST, out, tmp_path / "manifest.csv",
                                _settings(service.url, retries=0, on_failure="exclude"))
    assert manifest["status"].tolist() == ["failed", "ok"]
    assert manifest["detail"].iloc[0] == ("replaced an invalid earlier file (outside the survey footprint (all NaN/zero)); "
                                          "gave up after 1 attempt(s): attempt 1: download: HTTP 503")
    _assert_only_valid_cutouts(out, mirror, sources, {sources["name"].iloc[1]})


# --------------------------------------------------------------------------- the service is unreachable


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/current/cgi/basicform.pl"


def test_connection_refused_stops_before_any_cutout(tmp_path, sources):
    url = _closed_port_url()
    with pytest.raises(FetchError) as error:
        fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(url))
    assert str(error.value) == (
        f"cannot reach SkyView at {url}: all 3 attempts to read its form page failed (last: connection refused "
        "(ConnectionError)). Check fetch.skyview_url (or $RGMORPH_SKYVIEW_URL) and the network, then rerun: cutouts "
        "fetched earlier are kept.")
    assert list((tmp_path / "out").iterdir()) == [] and not (tmp_path / "manifest.csv").exists()
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())  # the service-down run is on record
    assert (report["outcome"], report["error"], report["sources"]) == (
        "stopped: checks before fetching failed", str(error.value), 3)
    assert (report["requests"], report["counts"], report["fetched"]) == (3, {}, [])


def test_connection_refused_mid_run_is_retried_then_fails(tmp_path, sources):
    settings = _settings("")
    with _service() as service:
        source = SkyViewSource(service.url, TIMEOUT_S, RateLimiter(None))
        source.preflight(FIRST, sources, settings)
    # the service has stopped: its port refuses connections now
    row = sources.iloc[0]
    record = _fetch_one(source, FIRST, row, tmp_path / "x.fits", settings)
    assert (record["status"], record["attempts"]) == ("failed", 3)
    assert record["detail"] == "gave up after 3 attempt(s): " + "; ".join(
        f"attempt {n}: query: connection refused (ConnectionError)" for n in (1, 2, 3))
    assert not (tmp_path / "x.fits").exists()


def test_a_service_that_goes_down_stops_the_fetch_early_whatever_on_failure_says(tmp_path, sources):
    many = pd.concat([sources, sources.assign(name=sources["name"] + " b", ra_deg=sources["ra_deg"])]).head(5)
    many = many.drop_duplicates("name").reset_index(drop=True)
    with _service(FaultRule("http_503", stage="fits", count=None)) as service:
        with pytest.raises(FetchError, match=r"the fetch stopped after 2 sources in a row failed for good"):
            fetch_survey(many, FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                         _settings(service.url, retries=1, on_failure="exclude", max_consecutive_failures=2))
        fits_requests = service.count("fits")
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())
    assert report["outcome"] == "stopped: service failing"
    assert [entry["detail"] == "not attempted" for entry in report["unusable"]] == [False, False, True, True, True]
    assert fits_requests == 4  # 2 sources x 2 attempts, then nothing more


# --------------------------------------------------------------------------- astroquery's own state


def test_an_error_page_for_the_form_does_not_poison_the_survey_list(tmp_path, sources, mirror):
    # astroquery keeps the first survey list it reads; from an error page that list is empty,
    # and every later query would fail as 'survey not offered'.
    with _service(FaultRule("html_200", stage="form", count=1)) as service:
        manifest = fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(service.url))
        form_requests = service.count("form")
    assert manifest["status"].tolist() == ["ok", "ok", "ok"]
    assert form_requests == 2 + 3  # the survey check twice, then one per query


def test_the_disk_cache_never_keeps_an_error_page(tmp_path, sources, mirror):
    # With astroquery's cache on (its default), a status-200 error page for the form would be
    # stored and served to every later query; our client must never use the cache.
    cache = tmp_path / "cache"
    with cache_conf.set_temp("cache_active", True), paths.set_temp_cache(cache):
        with _service(FaultRule("html_200", stage="form", count=1, skip=1)) as service:
            manifest = fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv", _settings(service.url))
    assert manifest["status"].tolist() == ["retried", "ok", "ok"]
    assert list(cache.rglob("*.pickle")) == []


# --------------------------------------------------------------------------- rate limit


def test_the_request_rate_stays_under_the_configured_maximum(tmp_path, sources, quickstart_sources):
    four = quickstart_sources.head(4)
    # The service answers HTTP 429 past 12 requests in any second; we ask for at most 10.
    with _service(max_rps=12) as service:
        started = time.monotonic()
        manifest = fetch_survey(four, FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                                _settings(service.url, max_requests_per_s=10, max_concurrent=4, retries=0))
        elapsed = time.monotonic() - started
        throttled, total = service.count(status=429), service.count()
    assert manifest["status"].tolist() == ["ok"] * 4
    assert (throttled, total) == (0, 1 + 4 * 3)
    assert elapsed >= (total - 1) / 10  # 13 requests spaced by at least 0.1 s


def test_settings_are_checked_before_anything_runs():
    with pytest.raises(FetchError, match=r"fetch.on_failure must be one of \['stop', 'exclude'\], not 'skip'"):
        FetchSettings(on_failure="skip")
    with pytest.raises(FetchError, match=r"fetch.max_requests_per_s must be a positive number or null, not 0"):
        FetchSettings(max_requests_per_s=0)
    with pytest.raises(FetchError, match=r"fetch.max_cutout_bytes must be an integer >= 1, not 0"):
        FetchSettings(max_cutout_bytes=0)


# --------------------------------------------------------------------------- one retry policy, size cap, full disk


def test_the_retry_policy_doubles_the_wait_up_to_the_cap_and_never_retries_a_permanent_error():
    policy = retry_policy(FetchSettings(retries=4, backoff_s=2.0, max_backoff_s=5.0), "test")
    slept, calls = [], []
    policy.sleep = slept.append

    def failing(error):
        calls.append(error)
        raise error

    with pytest.raises(RetryableFetchError):
        policy(failing, RetryableFetchError("flaky"))
    assert (slept, len(calls)) == ([2.0, 4.0, 5.0, 5.0], 5)
    with pytest.raises(PermanentFetchError):
        policy(failing, PermanentFetchError("gone"))
    assert (slept, len(calls)) == ([2.0, 4.0, 5.0, 5.0], 6)


def test_a_download_larger_than_the_cap_is_given_up_at_once(tmp_path, sources):
    with _service() as service, pytest.raises(FetchError, match=r"larger than fetch.max_cutout_bytes \(20000 bytes\)"):
        root = service.root
        fetch_survey(sources.head(1), FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                     _settings(service.url, max_cutout_bytes=20_000))
    [entry] = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())["unusable"]
    assert (entry["status"], entry["attempts"]) == ("failed", 1)  # a retry would only download it again
    assert entry["detail"].startswith(f"the FITS file at {root}/tempspace/fits/skv")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_full_disk_stops_the_fetch_naming_the_file_and_the_bytes_and_the_report_is_written(
        tmp_path, sources, mirror, monkeypatch):
    write = files.write_bytes_atomic

    def disk_full_for_cutouts(target, data):
        if str(target).endswith(".fits"):
            raise OSError(errno.ENOSPC, "No space left on device")
        write(target, data)

    monkeypatch.setattr(files, "write_bytes_atomic", disk_full_for_cutouts)
    row = sources.iloc[0]
    target = tmp_path / "out" / cutout_filename(row.ra_deg, row.dec_deg)
    size = len(mirror.get(FIRST, row.ra_deg, row.dec_deg))
    with pytest.raises(FetchError) as error:
        fetch_survey(sources, FIRST, tmp_path / "out", tmp_path / "manifest.csv",
                     FetchSettings(mirror_dir=str(QUICKSTART_MIRROR), max_concurrent=1, on_failure="exclude"))
    assert str(error.value) == (f"cannot write {target}: No space left on device; {size} bytes were needed. Free space "
                                "or fix the permissions, then rerun: the valid cutouts fetched so far are kept.")
    report = json.loads(report_path_for(tmp_path / "manifest.csv").read_text())
    assert (report["outcome"], report["error"]) == ("stopped: cannot write", str(error.value))
    assert [entry["detail"] for entry in report["unusable"]][1:] == ["not attempted"] * 2  # stopped at once
    assert list((tmp_path / "out").iterdir()) == [] and not (tmp_path / "manifest.csv").exists()
