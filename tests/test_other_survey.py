"""A survey FRDEEP does not use (TGSS ADR1), end to end, through the real astroquery SkyView client.

The study's only survey is ``TGSS: {skyview_name: "TGSS ADR1", ...}``: one config entry. Cutouts
come from ``fetch.source: skyview`` with ``fetch.skyview_url`` pointing at the local stand-in
service (tests/skyview_standin.py); astroquery is not mocked.

We hold no real TGSS data offline, so the stand-in's mirror is built here from the quick-start
mirror's real FIRST cutouts DEGRADED TO TGSS RESOLUTION: smoothed with a Gaussian to TGSS ADR1's
25" beam (Intema et al. 2017), rescaled from Jy/FIRST-beam to Jy/TGSS-beam, and resampled onto a
6.2"-pixel TAN grid centred on the source. These are test data only, not TGSS images.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from conftest import CLASS_NAMES, QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO
from rgmorph.catalogue import CatalogueSpec, read_catalogue
from skyview_standin import StandInSkyView

SKYVIEW_NAME = "TGSS ADR1"
PIXELS = 40  # 40 x 6.2" = 248": inside the 150 x 1.8" = 270" FIRST field it is resampled from
SCALE_ARCSEC = 6.2  # TGSS ADR1 image pixels
BEAM_ARCSEC = 25.0  # TGSS ADR1 resolution (north of Dec 19 deg; larger further south, ignored here)
FIRST_BEAM_ARCSEC = 5.0
FWHM_TO_SIGMA = 1 / (2 * np.sqrt(2 * np.log(2)))


def _degraded_to_tgss(first_gz, ra_deg: float, dec_deg: float) -> bytes:
    """A FIRST cutout smoothed to a 25" beam and resampled to PIXELS x PIXELS at 6.2": FITS bytes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SkyView's COMMENT cards hold tabs
        with fits.open(first_gz) as hdus:
            image = np.nan_to_num(np.asarray(hdus[0].data, dtype=np.float64))
            first_wcs = WCS(hdus[0].header)
            first_scale = abs(float(hdus[0].header["CDELT2"])) * 3600
    kernel_fwhm = np.sqrt(BEAM_ARCSEC**2 - FIRST_BEAM_ARCSEC**2)  # FIRST's beam is already in the image
    smooth = ndimage.gaussian_filter(image, kernel_fwhm * FWHM_TO_SIGMA / first_scale, mode="nearest")
    smooth *= (BEAM_ARCSEC / FIRST_BEAM_ARCSEC) ** 2  # Jy/beam: a beam 25x the area holds 25x the flux

    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN", "DEC--TAN"
    header["CRVAL1"], header["CRVAL2"] = ra_deg, dec_deg
    header["CRPIX1"] = header["CRPIX2"] = (PIXELS + 1) / 2
    header["CDELT1"], header["CDELT2"] = -SCALE_ARCSEC / 3600, SCALE_ARCSEC / 3600
    header["RADESYS"], header["EQUINOX"] = "FK5", 2000.0
    tgss_wcs = WCS(header)
    rows, cols = np.mgrid[:PIXELS, :PIXELS]
    world = tgss_wcs.pixel_to_world_values(cols, rows)
    x, y = first_wcs.world_to_pixel_values(*world)
    resampled = ndimage.map_coordinates(smooth, [y, x], order=1, mode="nearest").astype(np.float32)

    hdu = fits.PrimaryHDU(resampled, header=header)
    hdu.header["BUNIT"] = "JY/BEAM"
    hdu.header["COMMENT"] = "TEST DATA: a VLA FIRST cutout degraded to TGSS ADR1 resolution (25 arcsec beam,"
    hdu.header["COMMENT"] = "6.2 arcsec pixels) by rgmorph's tests/test_other_survey.py. Not a TGSS image."
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


def _tgss_mirror(folder, sources: pd.DataFrame) -> pd.DataFrame:
    """index.csv + TGSS/*.fits.gz for ``sources``, from the quick-start mirror's FIRST cutouts."""
    first = pd.read_csv(QUICKSTART_MIRROR / "index.csv")
    first = first[first["survey"] == "VLA FIRST (1.4 GHz)"].reset_index(drop=True)
    (folder / "TGSS").mkdir(parents=True)
    rows = []
    for source in sources.itertuples():
        # nearest FIRST row (the mirror's positions match the catalogue's to well within 1")
        dra = (first["ra_deg"] - source.ra_deg) * np.cos(np.radians(source.dec_deg))
        nearest = first.loc[np.argmin(np.hypot(dra, first["dec_deg"] - source.dec_deg))]
        data = _degraded_to_tgss(QUICKSTART_MIRROR / nearest["file"], nearest["ra_deg"], nearest["dec_deg"])
        name = f"TGSS/{nearest['ra_deg']:09.5f}{nearest['dec_deg']:+09.5f}.fits.gz"
        (folder / name).write_bytes(gzip.compress(data, mtime=0))
        rows.append({"survey": SKYVIEW_NAME, "ra_deg": f"{nearest['ra_deg']:.6f}",
                     "dec_deg": f"{nearest['dec_deg']:.6f}", "pixels": PIXELS,
                     "pixel_scale_deg": f"{SCALE_ARCSEC / 3600:.8f}", "file": name,
                     "sha256": hashlib.sha256(data).hexdigest(),  # of the ungzipped FITS: what SkyView serves
                     "name": source.name})
    index = pd.DataFrame(rows)
    index.drop(columns="name").to_csv(folder / "index.csv", index=False, quoting=csv.QUOTE_MINIMAL)
    return index


@pytest.fixture(scope="module")
def tgss_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tgss")
    catalogue = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str)
    tiny = catalogue.groupby(["fr_class", "split"]).head(3)  # three per (class, split), as tiny_run
    tiny.to_csv(folder / "catalogue.csv", index=False)
    sources = read_catalogue(folder / "catalogue.csv", CatalogueSpec(class_names=CLASS_NAMES))
    index = _tgss_mirror(folder / "mirror", sources)

    with StandInSkyView(folder / "mirror") as service:
        config = {
            "results_dir": str(folder / "results"),
            "catalogue": {"path": str(folder / "catalogue.csv")},
            "surveys": {"TGSS": {"skyview_name": SKYVIEW_NAME, "pixels": PIXELS, "pixel_scale_arcsec": SCALE_ARCSEC}},
            "fetch": {"source": "skyview", "skyview_url": service.url, "retries": 0, "timeout_s": 30},
            # tang2019 needs >= 84 pixels; LeNet takes 40
            "train": {"models": ["lenet"], "seeds": [0], "epochs": 1, "threads": 1},
            "transfer": {"models": []},
        }
        config_path = folder / "tgss.yaml"
        config_path.write_text(yaml.safe_dump(config))
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("RGMORPH_SKYVIEW_URL", "RGMORPH_SKYVIEW_MIRROR")}
        summary = folder / "results" / "tables" / "summary.csv"
        result = subprocess.run([sys.executable, "-m", "snakemake", str(summary), "--cores", "2",
                                 "--configfile", str(config_path)],
                                cwd=REPO, capture_output=True, text=True, env=environment)
        requests = service.requests
        fits_served = dict(service.fits_served)
    if result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return folder / "results", sources, index, requests, fits_served


def test_the_stand_in_offers_tgss_in_its_form(tmp_path):
    (tmp_path / "index.csv").write_text("survey,ra_deg,dec_deg,pixels,pixel_scale_deg,file,sha256\n")
    from astroquery.skyview import SkyViewClass

    with StandInSkyView(tmp_path) as service:
        client = SkyViewClass()
        client.URL = service.url
        offered = [name for names in client.survey_dict.values() for name in names]
    assert SKYVIEW_NAME in offered and "SUMSS 843 MHz" in offered


def test_every_source_is_fetched_once_through_skyview(tgss_run):
    _, sources, index, requests, fits_served = tgss_run
    fits = [r for r in requests if r.stage == "fits"]
    assert len(fits) == len(sources) == 12
    assert all(r.status == 200 and r.fault is None for r in requests)
    assert fits_served == {name: 1 for name in index["file"]}
    results_pages = [r for r in requests if r.stage == "results"]
    assert len(results_pages) == len(sources)
    assert all("survey=TGSS+ADR1" in r.path and f"pixels={PIXELS}" in r.path for r in results_pages)


def test_manifest_lists_every_source_with_the_served_bytes(tgss_run):
    results, sources, index, _, _ = tgss_run
    manifest = pd.read_csv(results / "cutouts" / "TGSS" / "manifest.csv")
    assert sorted(manifest["name"]) == sorted(sources["name"])
    assert set(manifest["survey"]) == {"TGSS"} and set(manifest["status"]) == {"ok"}
    expected = dict(zip(index["name"], index["sha256"]))
    assert dict(zip(manifest["name"], manifest["sha256"])) == expected
    for row in manifest.itertuples():
        data = (results / "cutouts" / "TGSS" / row.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        header = fits.Header.fromstring(data[:2880 * 4])
        assert header["NAXIS1"] == header["NAXIS2"] == PIXELS
        assert header["CTYPE1"] == "RA---TAN" and header["CDELT2"] == pytest.approx(SCALE_ARCSEC / 3600)


def test_dataset_and_summary_are_for_tgss(tgss_run):
    results, sources, _, _, _ = tgss_run
    with np.load(results / "datasets" / "TGSS.npz") as dataset:
        assert dataset["images"].shape == (len(sources), PIXELS, PIXELS)
        assert str(dataset["survey"]) == "TGSS"
        assert np.allclose(dataset["pixel_scale_arcsec"], SCALE_ARCSEC)
        assert np.isfinite(dataset["images"]).all() and dataset["images"].max() > 0
    summary = pd.read_csv(results / "tables" / "summary.csv")
    assert list(summary["survey"]) == ["TGSS"] and list(summary["model"]) == ["lenet"]
    assert not (results / "cutouts" / "FIRST").exists() and not (results / "cutouts" / "NVSS").exists()
