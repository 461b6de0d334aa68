"""The Gabor-feature SVM baseline on a synthetic problem: one central blob against two opposite lobes."""

from __future__ import annotations

import numpy as np
import pytest

from rgmorph.models.gabor_svm import MOMENTS, GaborSVM, gabor_features

SIZE = 64


def _synthetic(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: a blob at the centre; class 1: two blobs on opposite sides at a random angle. Noisy."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    labels = rng.integers(0, 2, count)
    images = []
    for label in labels:
        width = rng.uniform(2, 4)
        if label == 0:
            centres = [(0.0, 0.0)]
        else:
            angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(12, 22)
            centres = [(side * distance * np.sin(angle), side * distance * np.cos(angle)) for side in (1, -1)]
        image = sum(np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * width**2)) for row, col in centres)
        images.append(image + rng.normal(0, 0.1, image.shape))
    return np.array(images), labels


@pytest.fixture(scope="module")
def data():
    return _synthetic(120, seed=0), _synthetic(120, seed=1)


@pytest.fixture(scope="module")
def fitted(data):
    (train_images, train_labels), _ = data
    return GaborSVM(seed=0).fit(train_images, train_labels)


def test_feature_vector_shape_and_values(data):
    (images, _), _ = data
    features = gabor_features(images[:10], orientations=4, wavelengths=(4.0, 8.0, 16.0))
    assert features.shape == (10, 4 * 3 * len(MOMENTS))
    assert np.isfinite(features).all()


def test_features_are_finite_for_a_blank_image():
    assert np.isfinite(gabor_features(np.zeros((1, SIZE, SIZE)))).all()


def test_features_are_invariant_to_quarter_turns(data):
    # a quarter turn is a circular shift of the polar grid by a quarter of its angles
    (images, _), _ = data
    features = gabor_features(images[:5])
    np.testing.assert_allclose(gabor_features(np.rot90(images[:5], 1, axes=(1, 2))), features, rtol=1e-4)


def test_separates_held_out_synthetic_data(data, fitted):
    _, (test_images, test_labels) = data
    assert (fitted.predict(test_images) == test_labels).mean() >= 0.9


def test_probabilities_are_normalised_and_agree_with_predictions(data, fitted):
    _, (test_images, _) = data
    probabilities = fitted.predict_proba(test_images)
    assert probabilities.shape == (len(test_images), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    np.testing.assert_array_equal(fitted.predict(test_images), probabilities.argmax(axis=1))


def test_same_seed_gives_identical_probabilities(data, fitted):
    (train_images, train_labels), (test_images, _) = data
    refitted = GaborSVM(seed=0).fit(train_images, train_labels)
    np.testing.assert_array_equal(refitted.predict_proba(test_images), fitted.predict_proba(test_images))


def test_state_roundtrip_through_a_weights_only_file(data, fitted, tmp_path):
    import torch

    from rgmorph.checkpoint import load_safely

    _, (test_images, _) = data
    path = tmp_path / "gabor_svm.pt"
    torch.save(fitted.state(), path)  # what a checkpoint holds: arrays and plain data
    restored = GaborSVM.from_state(load_safely(path))
    np.testing.assert_array_equal(restored.predict_proba(test_images), fitted.predict_proba(test_images))
