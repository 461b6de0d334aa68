"""Fetching from the bundled mirror and, through astroquery's real client, from a local stand-in SkyView."""

import gzip

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from rgmorph.fetch import (FetchError, FetchSettings, MirrorSource, RetryableFetchError, Survey, check_fits_image, cutout_filename,
                           fetch_survey, is_blank)
from rgmorph.files import sha256_file
from skyview_standin import StandInSkyView
from conftest import QUICKSTART_MIRROR, balanced_subset

FIRST = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
NVSS = Survey("NVSS", "NVSS", 150)
# The mirror's index rounds RA to 1e-3 deg, so a catalogue position can sit up to 1.8 arcsec from it.
STAND_IN_MATCH_ARCSEC = 3.0


@pytest.fixture()
def few_sources(quickstart_sources):
    return balanced_subset(quickstart_sources, 1)


def _mirror_bytes(survey: Survey, ra: float, dec: float) -> bytes:
    source = MirrorSource(QUICKSTART_MIRROR)
    return source.get(survey, ra, dec)


def test_cutout_filename_follows_the_mirror():
    assert cutout_filename(212.135, 0.526091) == "212.13500+00.52609.fits"
    assert cutout_filename(7.25409, -1.22825) == "007.25409-01.22825.fits"


@pytest.mark.parametrize("survey", [FIRST, NVSS], ids=lambda s: s.key)
def test_mirror_fetch_keeps_the_bytes_and_records_them(tmp_path, few_sources, mirror_index, survey):
    manifest = fetch_survey(few_sources, survey, tmp_path / survey.key, tmp_path / "manifest.csv",
                            FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    assert list(manifest["name"]) == list(few_sources["name"])
    assert set(manifest["status"]) == {"ok"}
    written = pd.read_csv(tmp_path / "manifest.csv")
    assert list(written["sha256"]) == list(manifest["sha256"])
    indexed = set(mirror_index.loc[mirror_index["survey"] == survey.skyview_name, "sha256"])
    for row in manifest.itertuples():
        path = tmp_path / survey.key / row.file
        assert sha256_file(path) == row.sha256  # the file on disk is what the manifest says
        assert row.sha256 in indexed  # and exactly what SkyView served
        with fits.open(path) as hdus:
            assert hdus[0].data.shape == (150, 150)
    assert not list((tmp_path / survey.key).glob("*.part"))


def test_rerun_reuses_valid_files_and_replaces_damaged_ones(tmp_path, few_sources):
    settings = FetchSettings(mirror_dir=str(QUICKSTART_MIRROR))
    first = fetch_survey(few_sources, FIRST, tmp_path, tmp_path / "manifest.csv", settings)
    damaged = tmp_path / first["file"].iloc[0]
    damaged.write_bytes(damaged.read_bytes()[:5000])
    second = fetch_survey(few_sources, FIRST, tmp_path, tmp_path / "manifest.csv", settings)
    assert second["status"].iloc[0] == "ok"  # fetched again
    assert set(second["status"].iloc[1:]) == {"present"}
    assert list(second["sha256"]) == list(first["sha256"])


def test_single_survey_study(tmp_path, few_sources):
    manifest = fetch_survey(few_sources, NVSS, tmp_path, tmp_path / "manifest.csv",
                            FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    assert len(manifest) == len(few_sources)


def test_astroquery_client_fetches_identical_bytes_from_a_stand_in_service(tmp_path, few_sources):
    with StandInSkyView(QUICKSTART_MIRROR, match_radius_arcsec=STAND_IN_MATCH_ARCSEC) as service:
        settings = FetchSettings(source="skyview", skyview_url=service.url, timeout_s=10, retries=0, max_concurrent=2)
        manifest = fetch_survey(few_sources, FIRST, tmp_path, tmp_path / "manifest.csv", settings)
        form_requests = service.count("form")
        fits_requests = service.count("fits")
    assert set(manifest["status"]) == {"ok"}
    assert fits_requests == len(few_sources)
    assert form_requests >= 1  # astroquery really read the form page
    for row in manifest.itertuples():
        expected = _mirror_bytes(FIRST, row.ra_deg, row.dec_deg)
        assert (tmp_path / row.file).read_bytes() == expected


def test_unknown_survey_is_refused_before_any_cutout(tmp_path, few_sources):
    bogus = Survey("BOGUS", "No Such Survey", 150)
    with StandInSkyView(QUICKSTART_MIRROR, match_radius_arcsec=STAND_IN_MATCH_ARCSEC) as service:
        settings = FetchSettings(source="skyview", skyview_url=service.url, timeout_s=10, retries=3, backoff_s=0.01)
        with pytest.raises(FetchError, match=r"does not offer survey 'No Such Survey' \(config surveys.BOGUS.skyview_name\)"):
            fetch_survey(few_sources.head(1), bogus, tmp_path, tmp_path / "manifest.csv", settings)
        assert service.count("fits") == 0
    assert not (tmp_path / "manifest.csv").exists()


def test_check_fits_image_rejects_truncated_and_wrong_size(few_sources):
    row = few_sources.iloc[0]
    data = _mirror_bytes(FIRST, row.ra_deg, row.dec_deg)
    assert check_fits_image(data, 150).shape == (150, 150)
    with pytest.raises(RetryableFetchError, match="truncated"):
        check_fits_image(data[:-1000], 150)
    with pytest.raises(RetryableFetchError, match="expected 100x100"):
        check_fits_image(data, 100)
    with pytest.raises(RetryableFetchError, match="not a FITS file"):
        check_fits_image(b"<html><body>Error</body></html>", 150)


def test_blank_means_all_nan_or_all_zero():
    assert is_blank(np.full((4, 4), np.nan))
    assert is_blank(np.zeros((4, 4)))
    assert not is_blank(np.array([[np.nan, 0.0], [0.0, 1e-3]]))


def test_mirror_bundle_is_small_and_gzipped():
    files = list(QUICKSTART_MIRROR.rglob("*.fits.gz"))
    assert len(files) == 200  # 100 sources x 2 surveys
    assert sum(f.stat().st_size for f in files) <= 12e6
    assert gzip.decompress(files[0].read_bytes())[:9] == b"SIMPLE  ="
