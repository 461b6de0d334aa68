"""The local SkyView stand-in, driven by the real (unchanged) astroquery client."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import threading
import time
import warnings

import numpy as np
import pytest
import requests
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astroquery import cache_conf
from astroquery.skyview import SkyViewClass

from conftest import QUICKSTART_MIRROR
from skyview_standin import (
    FITS_FAULTS,
    FaultPlan,
    FaultRule,
    StandInSkyView,
)

# The bundled quick-start sample (FIRST and NVSS cutouts of 100 sources): the suite runs from a
# clone alone, without ../shared beside it.
MIRROR = QUICKSTART_MIRROR
FIRST = "VLA FIRST (1.4 GHz)"


def _index() -> list[dict[str, str]]:
    with open(MIRROR / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


INDEX = _index()
ROW_FIRST = next(r for r in INDEX if r["survey"] == FIRST)
ROW_NVSS = [r for r in INDEX if r["survey"] == "NVSS"][-1]


@pytest.fixture(autouse=True)
def _no_astroquery_cache():
    # _generate_payload fetches the form page under the *global* cache setting
    # (cache=False to get_image_list does not reach it), and astroquery caches
    # any 200 reply, faulty ones included, keyed on a URL whose port the OS may
    # reuse: without this, one test's form-stage fault could poison another's.
    with cache_conf.set_temp("cache_active", False):
        yield


@pytest.fixture
def sv(tmp_path) -> SkyViewClass:
    client = SkyViewClass()
    client.cache_location = tmp_path  # never touch ~/.astropy even if caching is on
    return client


def _service(plan: FaultPlan | None = None, **kw) -> StandInSkyView:
    return StandInSkyView(MIRROR, plan, **kw)


def _image_list(sv: SkyViewClass, service: StandInSkyView, row: dict[str, str], **kw) -> list[str]:
    sv.URL = service.url
    args = dict(survey=row["survey"], pixels=150, scaling="Linear", cache=False)
    args.update(kw)
    pos = SkyCoord(float(row["ra_deg"]), float(row["dec_deg"]), unit="deg")
    return sv.get_image_list(position=pos, **args)


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _full_bytes(row: dict[str, str]) -> bytes:
    return gzip.decompress((MIRROR / row["file"]).read_bytes())


def _results_url(service: StandInSkyView, row: dict[str, str]) -> str:
    return (service.root + "/current/cgi/runquery.pl?Position="
            + f"{row['ra_deg']}+{row['dec_deg']}&survey={requests.utils.quote(row['survey'])}&pixels=150")


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize("row", [ROW_FIRST, ROW_NVSS], ids=["FIRST", "NVSS"])
def test_astroquery_fetches_byte_identical_cutout(sv, row):
    with _service() as service:
        urls = _image_list(sv, service, row)
        assert len(urls) == 1 and urls[0].startswith(service.root + "/tempspace/fits/")
        content = sv._request("GET", urls[0], cache=False).content
        assert _sha(content) == row["sha256"]
        assert service.fits_served[row["file"]] == 1
        # survey_dict's form GET, _generate_payload's form GET, results, FITS
        assert [r.stage for r in service.requests] == ["form", "form", "results", "fits"]


def test_several_surveys_one_query(sv):
    with _service() as service:
        urls = _image_list(sv, service, ROW_FIRST, survey=[FIRST, "NVSS", "DSS"])
        # DSS is listed (valid for astroquery) but not mirrored: no link.
        assert len(urls) == 2
        nvss = next(r for r in INDEX if r["survey"] == "NVSS" and r["ra_deg"] == ROW_FIRST["ra_deg"])
        got = [_sha(sv._request("GET", u, cache=False).content) for u in urls]
        assert got == [ROW_FIRST["sha256"], nvss["sha256"]]


def test_unknown_survey_raises_astroquery_valueerror(sv):
    with _service() as service:
        sv.URL = service.url
        assert {FIRST, "NVSS"} <= set(sv._valid_surveys)
        with pytest.raises(ValueError, match="not among the surveys"):
            _image_list(sv, service, ROW_FIRST, survey="No Such Survey")


def test_no_match_gives_no_links(sv):
    with _service() as service:
        far = dict(ROW_FIRST, ra_deg=str(float(ROW_FIRST["ra_deg"]) + 2 / 3600))  # 2" off
        assert _image_list(sv, service, far) == []
        # pixels left to the form default (300): the mirror cannot resample.
        assert _image_list(sv, service, ROW_FIRST, pixels=None) == []
        assert _image_list(sv, service, ROW_FIRST, survey="SUMSS 843 MHz") == []
        near = dict(ROW_FIRST, ra_deg=str(float(ROW_FIRST["ra_deg"]) + 0.5 / 3600))
        assert len(_image_list(sv, service, near)) == 1
        assert service.count("fits") == 0


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("stage", ["form", "results", "fits"])
@pytest.mark.parametrize("kind", ["http_500", "http_503", "http_404"])
def test_http_status_faults(sv, stage, kind):
    code = int(kind[-3:])
    with _service(FaultPlan([FaultRule(kind, stage, count=1)])) as service:
        url = {"form": service.url, "results": _results_url(service, ROW_FIRST)}.get(stage)
        if url is None:
            url = _image_list(sv, service, ROW_FIRST)[0]
        assert requests.get(url, timeout=5).status_code == code
        assert requests.get(url, timeout=5).status_code == 200  # count=1
        assert [r.status for r in service.requests if r.fault] == [code]


@pytest.mark.parametrize("stage", ["form", "results", "fits"])
def test_reset_fault_drops_connection(sv, stage):
    with _service(FaultPlan([FaultRule("reset", stage)])) as service:
        url = {"form": service.url, "results": _results_url(service, ROW_FIRST)}.get(stage)
        if url is None:
            url = _image_list(sv, service, ROW_FIRST)[0]
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
        assert requests.get(url, timeout=5).ok
        assert service.requests[-2].status is None and service.requests[-2].fault == "reset"


def test_form_fault_surfaces_through_astroquery(sv):
    with _service(FaultPlan([FaultRule("http_503", "form")])) as service:
        with pytest.raises(requests.HTTPError, match="503"):
            _image_list(sv, service, ROW_FIRST)
        assert len(_image_list(sv, service, ROW_FIRST)) == 1


@pytest.mark.parametrize("stage", ["form", "fits"])
def test_slow_fault(sv, stage):
    delay = 0.3
    with _service(FaultPlan([FaultRule("slow", stage, delay_s=delay)])) as service:
        url = service.url if stage == "form" else _image_list(sv, service, ROW_FIRST)[0]
        t0 = time.monotonic()
        r = requests.get(url, timeout=5)
        assert time.monotonic() - t0 >= delay and r.ok
        t0 = time.monotonic()
        requests.get(url, timeout=5)
        assert time.monotonic() - t0 < delay
        if stage == "fits":
            assert _sha(r.content) == ROW_FIRST["sha256"]


def test_html_instead_of_fits(sv):
    with _service(FaultPlan([FaultRule("html_200", "fits")])) as service:
        url = _image_list(sv, service, ROW_FIRST)[0]
        r = requests.get(url, timeout=5)
        assert r.status_code == 200 and r.headers["Content-Type"] == "text/html"
        assert r.content.startswith(b"<html") and b"SIMPLE" not in r.content
        assert service.fits_served[ROW_FIRST["file"]] == 0


def test_html_200_on_results_page_has_no_links(sv):
    with _service(FaultPlan([FaultRule("html_200", "results")])) as service:
        assert _image_list(sv, service, ROW_FIRST) == []


def test_truncated_and_dropped(sv):
    full = _full_bytes(ROW_FIRST)
    rules = [FaultRule("truncated"), FaultRule("dropped", skip=1)]
    with _service(FaultPlan(rules)) as service:
        url = _image_list(sv, service, ROW_FIRST)[0]
        r = requests.get(url, timeout=5)
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(full) // 2
        assert r.content == full[: len(full) // 2]
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            requests.get(url, timeout=5)
        assert _sha(requests.get(url, timeout=5).content) == ROW_FIRST["sha256"]


def _open(content: bytes) -> fits.HDUList:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SkyView's tab-bearing COMMENT cards
        return fits.open(io.BytesIO(content))


@pytest.mark.parametrize("kind", ["wrong_shape", "all_nan", "all_zero"])
def test_bad_but_valid_fits(sv, kind):
    orig = _open(_full_bytes(ROW_NVSS))[0]
    with _service(FaultPlan([FaultRule(kind, file=ROW_NVSS["file"])])) as service:
        url = _image_list(sv, service, ROW_NVSS)[0]
        content = requests.get(url, timeout=5).content
        assert len(content) % 2880 == 0
        hdu = _open(content)[0]
        assert hdu.header["CRVAL1"] == orig.header["CRVAL1"]
        if kind == "wrong_shape":
            assert hdu.data.shape == (100, 100)
            assert hdu.header["CRPIX1"] == orig.header["CRPIX1"] - 25
            np.testing.assert_array_equal(hdu.data, orig.data[25:125, 25:125])
        else:
            assert hdu.data.shape == (150, 150)
            assert np.isnan(hdu.data).all() if kind == "all_nan" else (hdu.data == 0).all()


@pytest.mark.parametrize("stage", ["results", "fits"])
def test_redirect_is_followed_to_same_bytes(sv, stage):
    with _service(FaultPlan([FaultRule("redirect", stage, count=None)])) as service:
        urls = _image_list(sv, service, ROW_FIRST)
        assert len(urls) == 1
        r = sv._request("GET", urls[0], cache=False)
        assert _sha(r.content) == ROW_FIRST["sha256"]
        log = [(q.stage, q.status) for q in service.requests if q.stage == stage]
        assert log[:2] == [(stage, 302), (stage, 200)]  # count=None cannot loop
        if stage == "fits":
            assert r.history[0].status_code == 302


def test_rule_windows_per_file(sv):
    rules = [FaultRule("http_503", file=ROW_FIRST["file"], skip=1, count=2)]
    with _service(FaultPlan(rules)) as service:
        url = _image_list(sv, service, ROW_FIRST)[0]
        other = _image_list(sv, service, ROW_NVSS)[0]
        codes = [requests.get(url, timeout=5).status_code for _ in range(4)]
        assert codes == [200, 503, 503, 200]
        assert requests.get(other, timeout=5).status_code == 200
        assert service.fits_served == {ROW_FIRST["file"]: 2, ROW_NVSS["file"]: 1}


def test_rules_validate():
    with pytest.raises(ValueError):
        FaultRule("truncated", "form")
    with pytest.raises(ValueError):
        FaultRule("nonsense")
    with pytest.raises(ValueError):
        FaultRule("http_500", "form", file=ROW_FIRST["file"])


def test_random_plan_is_reproducible():
    files = [(r["file"],) for r in INDEX[:40]]
    calls = [("form", ())] * 20 + [("results", f) for f in files] + [("fits", f) for f in files * 3]

    def run(seed, order):
        plan = FaultPlan(probability=0.3, seed=seed, delay_s=0.01)
        return {(i, *calls[i]): plan.decide(*calls[i]) for i in order}

    base = run(7, range(len(calls)))
    assert base == run(7, range(len(calls)))
    # Per-key numbering: interleaving across files does not change the draws.
    order = sorted(range(len(calls)), key=lambda i: (calls[i][1], i))
    assert base == run(7, order)
    assert base != run(8, range(len(calls)))
    faults = [f for f in base.values() if f]
    assert 0.15 * len(calls) < len(faults) < 0.45 * len(calls)
    assert all(f.kind not in FITS_FAULTS for (_, stage, *_), f in base.items() if f and stage != "fits")


def test_random_plan_end_to_end_reproducible(tmp_path):
    def run():
        sv = SkyViewClass()  # fresh: an instance caches survey_dict and form defaults
        sv.cache_location = tmp_path
        plan = FaultPlan(probability=0.5, seed=3, stages=["fits"],
                         kinds=["http_500", "truncated", "all_zero", "redirect"])
        with _service(plan) as service:
            url = _image_list(sv, service, ROW_FIRST)[0]
            out = [(r.status_code, _sha(r.content)) for r in
                   (requests.get(url, timeout=5) for _ in range(12))]
            return out, [(q.stage, q.status, q.fault) for q in service.requests]

    first = run()
    assert first == run()
    assert any(f for *_, f in first[1])


# --------------------------------------------------------------------------- rate, lifecycle


def test_rate_limit_and_peak_rate():
    with _service(max_rps=5) as service:
        codes = [requests.get(service.url, timeout=5).status_code for _ in range(8)]
        assert codes == [200] * 5 + [429] * 3
        assert service.peak_rate(1.0) == 8
        assert service.count("form") == 5
    with _service() as service:
        for _ in range(3):
            requests.get(service.url, timeout=5)
            time.sleep(0.12)
        assert service.peak_rate(0.1) == 1 and service.peak_rate(1.0) == 3


def test_stop_wakes_slow_requests_and_joins_threads():
    service = _service(FaultPlan([FaultRule("slow", "form", delay_s=30)])).start()
    url = service.url
    errors: list[BaseException] = []

    def client():
        try:
            requests.get(url, timeout=10)
        except BaseException as e:  # noqa: BLE001 - only recorded
            errors.append(e)

    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    service.stop()
    assert time.monotonic() - t0 < 5
    t.join(5)
    assert not t.is_alive()
    assert not [th for th in threading.enumerate() if th.name == "standin-skyview"]
    with pytest.raises(requests.ConnectionError):  # really refused now
        requests.get(url, timeout=2)
