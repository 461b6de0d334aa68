import re
import numpy as np
import pytest

from rgmorph.fetch import FetchSettings, Survey, fetch_survey
from rgmorph.dataset import load_dataset
from rgmorph.preprocess import (PreprocessError, build_dataset, centre_crop, clip_background, normalise,
                                preprocess_image, replace_nan)
from conftest import CLASS_NAMES, QUICKSTART_MIRROR, balanced_subset


def _source_on_noise(seed=0, size=64):
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    y, x = np.mgrid[:size, :size]
    source = 50.0 * np.exp(-((x - size / 2) ** 2 + (y - size / 2) ** 2) / (2 * 3.0**2))
    return noise + source.astype(np.float32), source


def test_sigma_clip_removes_the_noise_and_keeps_the_source():
    image, source = _source_on_noise()
    clipped = clip_background(image, sigma=3.0)
    background, bright = source < 1e-3, source > 10.0
    # Gaussian noise above +3 sigma is ~0.13% of pixels: almost all background becomes exactly 0.
    assert (clipped[background] == 0).mean() > 0.99
    assert np.array_equal(clipped[bright], image[bright])


def test_nan_becomes_zero_and_output_is_unit_range():
    image, _ = _source_on_noise()
    image[:5, :5] = np.nan
    assert not np.isnan(replace_nan(image)).any()
    result = preprocess_image(image)
    assert result.min() == 0.0 and result.max() == 1.0
    assert result.dtype == np.float32


def test_blank_image_normalises_to_zero_instead_of_dividing_by_zero():
    assert not normalise(np.zeros((8, 8), np.float32)).any()


def test_crop_and_resize():
    image, _ = _source_on_noise(size=150)
    assert centre_crop(image, 100).shape == (100, 100)
    assert preprocess_image(image, crop=100, size=64).shape == (64, 64)
    with pytest.raises(PreprocessError, match="crop size 200 exceeds"):
        centre_crop(image, 200)


@pytest.fixture()
def fetched(tmp_path, quickstart_sources):
    sources = balanced_subset(quickstart_sources, 2)
    survey = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
    manifest = fetch_survey(sources, survey, tmp_path / "FIRST", tmp_path / "FIRST" / "manifest.csv",
                            FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    return sources, manifest, tmp_path / "FIRST"


def test_dataset_file_holds_everything_a_run_needs(tmp_path, fetched):
    sources, manifest, cutouts = fetched
    summary = build_dataset(sources, manifest, cutouts, tmp_path / "FIRST.npz", CLASS_NAMES, "FIRST")
    dataset = load_dataset(tmp_path / "FIRST.npz")
    assert summary["sources"] == len(sources) == 8
    assert dataset["images"].shape == (8, 150, 150)
    assert list(dataset["names"]) == list(sources["name"])
    assert list(dataset["labels"]) == list(sources["label"])
    assert list(dataset["split"]) == list(sources["split"])
    assert list(dataset["sha256"]) == list(manifest["sha256"])
    assert dataset["class_names"] == CLASS_NAMES and dataset["survey"] == "FIRST"
    assert np.allclose(dataset["pixel_scale_arcsec"], 1.8)  # FIRST at SkyView's default scale
    assert dataset["images"].min() == 0.0 and np.allclose(dataset["images"].max(axis=(1, 2)), 1.0)


def test_unusable_cutouts_are_left_out_and_a_changed_file_is_refused(tmp_path, fetched):
    sources, manifest, cutouts = fetched
    failed = manifest.copy()
    failed.loc[0, "status"] = "failed"
    summary = build_dataset(sources, failed, cutouts, tmp_path / "a.npz", CLASS_NAMES, "FIRST")
    assert summary["sources"] == 7 and summary["excluded"] == 1
    assert manifest["name"].iloc[0] not in set(load_dataset(tmp_path / "a.npz")["names"])

    victim = cutouts / manifest["file"].iloc[1]
    victim.write_bytes(victim.read_bytes()[::-1])
    with pytest.raises(PreprocessError, match=re.escape(victim.name) + ".*differs from its manifest sha256"):
        build_dataset(sources, manifest, cutouts, tmp_path / "b.npz", CLASS_NAMES, "FIRST")
    assert not (tmp_path / "b.npz").exists()  # nothing half-written


def test_circular_mask_keeps_the_inscribed_circle_and_survives_any_rotation():
    from rgmorph.preprocess import inscribed_circle, preprocess_image

    rng = np.random.default_rng(0)
    image = rng.normal(0.0, 1.0, (40, 40))
    rows, cols = np.ogrid[:40, :40]
    radius = np.hypot(rows - 19.5, cols - 19.5)
    for row, col in [(0, 0), (0, 39), (39, 0), (39, 39), (20, 1), (1, 20)]:
        image[row, col] += 50.0  # bright pixels in the corners and at the middle of two edges
    image[radius < 3] += 80.0  # and a bright core
    circle = inscribed_circle(40)
    masked = preprocess_image(image, circular_mask=True)
    assert np.all(masked[~circle] == 0.0) and masked.max() == 1.0
    assert masked[0, 0] == 0.0 and masked[20, 1] > 0.0  # a corner is out, the middle of an edge is in
    plain = preprocess_image(image)
    assert plain[0, 0] > 0.0  # off by default: the published preprocessing is unchanged
    np.testing.assert_array_equal(masked[circle] > 0, plain[circle] > 0)  # inside, the same pixels survive
    assert circle.sum() == pytest.approx(np.pi * 20**2, rel=0.03)
    assert np.array_equal(np.rot90(circle), circle)  # train (rotated) and test (not) show the same field
