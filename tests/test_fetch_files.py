"""fetch.source 'files' (your own FITS/PNG/JPEG cutouts named by a catalogue column) and several mirrors."""

import gzip
import io
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from rgmorph import config_check
from rgmorph.catalogue import CatalogueSpec, read_catalogue
from rgmorph.fetch import (MIRROR_ENVIRONMENT_VARIABLE, FetchError, FetchSettings, MirrorSource, Survey, fetch_survey,
                           mirror_dirs, mirror_setting)
from rgmorph.files import sha256_bytes, sha256_file
from rgmorph.preprocess import build_dataset, read_fits_image
from conftest import CLASS_NAMES, QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, balanced_subset

FIRST = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
LOTSS = Survey("LoTSS", "LoTSS cutouts (own files)", 150)  # any name: skyview_name is only a label here
FILE_COLUMN = "cutout"


def _to_8bit(image: np.ndarray) -> np.ndarray:
    image = np.nan_to_num(image)
    low, high = np.percentile(image, [1, 99.9])
    return (np.clip((image - low) / (high - low), 0, 1) * 255).astype(np.uint8)


def _write_cutouts(kind: str, folder, subset: pd.DataFrame) -> list[str]:
    """Real FIRST cutouts of the bundled sample as the user's own files; returns the relative file names."""
    mirror = MirrorSource(QUICKSTART_MIRROR)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for number, row in enumerate(subset.itertuples(index=False)):
        data = mirror.get(FIRST, row.ra_deg, row.dec_deg)
        stem = f"sub/source{number}" if number == 0 else f"source{number}"  # one in a subfolder
        (folder / "sub").mkdir(exist_ok=True)
        if kind == "fits":
            name = f"{stem}.fits.gz" if number % 2 else f"{stem}.fits"  # both, plain and gzipped
            (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        else:
            with fits.open(io.BytesIO(data)) as hdus:
                pixels = np.flipud(_to_8bit(hdus[0].data))  # FITS row 0 is the bottom, PNG's the top
            if number == 1:  # an RGB file: read as its luminance, which equals the grey value here
                name = f"{stem}.png"
                Image.fromarray(np.stack([pixels] * 3, axis=-1), mode="RGB").save(folder / name)
            else:
                name = f"{stem}.png"
                Image.fromarray(pixels, mode="L").save(folder / name)
        names.append(name)
    return names


@pytest.fixture()
def subset(quickstart_sources):
    return balanced_subset(quickstart_sources, 1)


def _study(kind, tmp_path, subset):
    """A catalogue with a file column, carried into sources.csv by the catalogue stage; the cutout folder."""
    folder = tmp_path / f"{kind}-cutouts"
    names = _write_cutouts(kind, folder, subset)
    raw = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str).set_index("name").loc[subset["name"]].reset_index()
    raw[FILE_COLUMN] = names
    raw.to_csv(tmp_path / "catalogue.csv", index=False)
    sources = read_catalogue(tmp_path / "catalogue.csv", CatalogueSpec(class_names=CLASS_NAMES, carry=[FILE_COLUMN]))
    sources.to_csv(tmp_path / "sources.csv", index=False)
    return pd.read_csv(tmp_path / "sources.csv"), folder


def _settings(folder, **extra) -> FetchSettings:
    return FetchSettings(source="files", files_dir=str(folder), file_columns={"LoTSS": FILE_COLUMN}, **extra)


@pytest.mark.parametrize("kind", ["fits", "png"])
def test_own_cutouts_become_a_manifest_and_a_dataset(tmp_path, subset, kind):
    sources, folder = _study(kind, tmp_path, subset)
    out = tmp_path / "cutouts" / "LoTSS"
    manifest = fetch_survey(sources, LOTSS, out, out / "manifest.csv", _settings(folder))
    assert list(manifest["name"]) == list(sources["name"])
    assert set(manifest["status"]) == {"ok"}
    for row, given in zip(manifest.itertuples(), sources[FILE_COLUMN]):
        assert sha256_file(out / row.file) == row.sha256
        image = read_fits_image(out / row.file)
        assert image.shape == (150, 150)
        if kind == "fits":  # kept byte for byte (gunzipped)
            raw = (folder / given).read_bytes()
            assert row.sha256 == sha256_bytes(gzip.decompress(raw) if given.endswith(".gz") else raw)
        else:  # the PNG's pixels, in FITS row order
            pixels = np.asarray(Image.open(folder / given).convert("L"), dtype=np.float32)
            np.testing.assert_allclose(image, np.flipud(pixels), atol=0.51)
    summary = build_dataset(sources, manifest, out, tmp_path / "LoTSS.npz", CLASS_NAMES, "LoTSS")
    assert summary["sources"] == len(sources) and summary["shape"] == [150, 150]
    again = fetch_survey(sources, LOTSS, out, out / "manifest.csv", _settings(folder))
    assert set(again["status"]) == {"present"} and list(again["sha256"]) == list(manifest["sha256"])


def _break(kind: str, fault: str, path):
    if fault == "missing":
        path.unlink()
    elif fault == "corrupt":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    elif kind == "fits":
        data = fits.PrimaryHDU(np.ones((100, 100), np.float32)).writeto(buffer := io.BytesIO()) or buffer.getvalue()
        path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    else:
        Image.fromarray(np.full((100, 100), 7, np.uint8), mode="L").save(path)
    return {"missing": "is missing", "corrupt": "", "wrong size": "image is 100x100, expected 150x150"}[fault]


@pytest.mark.parametrize("kind", ["fits", "png"])
@pytest.mark.parametrize("fault", ["missing", "corrupt", "wrong size"])
def test_a_bad_file_is_named_by_its_row_and_path(tmp_path, subset, kind, fault):
    sources, folder = _study(kind, tmp_path, subset)
    victim = 3
    name, path = sources["name"].iloc[victim], folder / sources[FILE_COLUMN].iloc[victim]
    why = _break(kind, fault, path)
    out = tmp_path / "out"
    with pytest.raises(FetchError) as stopped:
        fetch_survey(sources, LOTSS, out, out / "manifest.csv", _settings(folder))
    message = str(stopped.value)
    assert f"source {name} (sources.csv line {victim + 2}, column {FILE_COLUMN})" in message
    assert str(path) in message and why in message
    # on_failure 'exclude': the others make a dataset, the bad one is listed as failed
    manifest = fetch_survey(sources, LOTSS, out, out / "manifest.csv", _settings(folder, on_failure="exclude"))
    assert manifest.loc[victim, "status"] == "failed" and str(path) in manifest.loc[victim, "detail"]
    assert set(manifest.drop(index=victim)["status"]) <= {"ok", "present"}
    summary = build_dataset(sources, manifest, out, tmp_path / "d.npz", CLASS_NAMES, "LoTSS")
    assert summary["sources"] == len(sources) - 1 and summary["excluded"] == 1


def test_files_source_needs_the_carried_column(tmp_path, subset):
    sources, folder = _study("fits", tmp_path, subset)
    with pytest.raises(FetchError, match="sources.csv has no column 'cutout'.*carry"):
        fetch_survey(sources.drop(columns=[FILE_COLUMN]), LOTSS, tmp_path / "o", tmp_path / "o/m.csv", _settings(folder))
    config = {"fetch": {"source": "files", "file_columns": {"LoTSS": FILE_COLUMN}},
              "catalogue": {"carry": []}, "surveys": {"LoTSS": {"skyview_name": "x"}, "RACS": {"skyview_name": "y"}}}
    assert config_check.mirror_problems(config) == [
        "config key catalogue.carry: lacks 'cutout' (fetch.file_columns.LoTSS); the catalogue step must carry it "
        "into sources.csv",
        "config key fetch.file_columns.RACS: not set, but fetch.source is 'files'; name the catalogue column that "
        "holds each source's file",
    ]
    config["catalogue"]["carry"] = [FILE_COLUMN]
    config["surveys"].pop("RACS")
    assert config_check.mirror_problems(config) == []


def _split_mirror(tmp_path, subset):
    """Two mirrors, each holding half of the subset's FIRST cutouts (and no NVSS)."""
    index = pd.read_csv(QUICKSTART_MIRROR / "index.csv")
    source = MirrorSource(QUICKSTART_MIRROR)
    files = [source._locate(FIRST, r.ra_deg, r.dec_deg)["file"] for r in subset.itertuples(index=False)]
    roots = [tmp_path / "mirror-a", tmp_path / "mirror-b"]
    for root, part in zip(roots, (files[::2], files[1::2])):
        (root / "FIRST").mkdir(parents=True)
        for file in part:
            shutil.copy(QUICKSTART_MIRROR / file, root / file)
        index[index["file"].isin(part)].to_csv(root / "index.csv", index=False)
    return roots


def test_several_mirrors_each_give_their_cutouts(tmp_path, subset, monkeypatch):
    roots = _split_mirror(tmp_path, subset)
    single = fetch_survey(subset, FIRST, tmp_path / "one", tmp_path / "one.csv",
                          FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    both = fetch_survey(subset, FIRST, tmp_path / "two", tmp_path / "two.csv",
                        FetchSettings(mirror_dir=[str(r) for r in roots]))
    assert set(both["status"]) == {"ok"}
    assert list(both["sha256"]) == list(single["sha256"])
    # one mirror alone lacks half of them
    half = fetch_survey(subset, FIRST, tmp_path / "half", tmp_path / "half.csv",
                        FetchSettings(mirror_dir=str(roots[0]), on_failure="exclude"))
    assert (half["status"] == "failed").sum() == len(subset) // 2
    # the environment variable names several, joined like PATH
    monkeypatch.setenv(MIRROR_ENVIRONMENT_VARIABLE, os.pathsep.join(str(r) for r in roots))
    assert mirror_dirs(mirror_setting("ignored")) == [str(r) for r in roots]
    config = {"fetch": {"source": "mirror", "mirror_dir": "ignored"},
              "surveys": {"FIRST": {"skyview_name": FIRST.skyview_name}, "NVSS": {"skyview_name": "NVSS"}}}
    problems = config_check.mirror_problems(config)
    assert problems == [f"config key surveys.NVSS.skyview_name: none of the mirrors ({roots[0]}, {roots[1]}) holds "
                        f"'NVSS' cutouts; they hold ['{FIRST.skyview_name}']"]
    with pytest.raises(FetchError, match="none of the mirrors .* holds 'NVSS' cutouts"):
        fetch_survey(subset, Survey("NVSS", "NVSS", 150), tmp_path / "n", tmp_path / "n.csv",
                     FetchSettings(mirror_dir=[str(r) for r in roots]))


def test_a_png_study_with_a_file_column_takes_its_pixel_scale_from_the_config(tmp_path, subset):
    # 'file' is also the manifest's column: a carried catalogue column of that name must not meet it
    sources, folder = _study("png", tmp_path, subset)
    sources = sources.rename(columns={FILE_COLUMN: "file"})
    out = tmp_path / "cutouts" / "LoTSS"
    settings = FetchSettings(source="files", files_dir=str(folder), file_columns={"LoTSS": "file"})
    manifest = fetch_survey(sources, LOTSS, out, out / "manifest.csv", settings)
    without = build_dataset(sources, manifest, out, tmp_path / "none.npz", CLASS_NAMES, "LoTSS")
    assert without["sources"] == len(sources)
    assert np.isnan(np.load(tmp_path / "none.npz")["pixel_scale_arcsec"]).all()  # a PNG's header has no scale
    build_dataset(sources, manifest, out, tmp_path / "d.npz", CLASS_NAMES, "LoTSS", size=75, pixel_scale=6.0)
    np.testing.assert_allclose(np.load(tmp_path / "d.npz")["pixel_scale_arcsec"], 12.0)  # 150 px resized to 75
