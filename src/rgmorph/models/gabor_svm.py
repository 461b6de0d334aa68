"""Gabor-feature support vector machine: the baseline of Hartley et al. 2017 (MNRAS 471, 3378).

Each image is resampled onto a polar grid about its centre, where a rotation of the source becomes a
circular shift along the angle axis. A bank of complex Gabor filters (orientations x wavelengths) is
applied by FFT, circular along the angle axis and zero-padded along the radius axis. The mean,
variance, skewness, kurtosis and energy (sum of squares) of each filter's response amplitude do not
change under circular shifts, so the feature vector is rotation invariant up to resampling. A
standardised RBF support vector machine with Platt-scaled probabilities classifies the features.

Platt scaling is done by CalibratedClassifierCV (sigmoid fitted to 5-fold cross-validated decision
values, one SVC refitted on all the data): that is what SVC(probability=True) did internally, and
scikit-learn 1.9 deprecates that option in favour of this form.

Not a torch model: the registry names it as an estimator (``rgmorph.models.variants()``, name
GABOR_SVM_NAME) and imports this module only when it is built or trained; scikit-learn is imported
only when an SVM is fitted or loaded. Training (``rgmorph.train_gabor``) chooses C and gamma
on the validation hold-out (``select_svm``) and stores the fitted numbers (support vectors,
coefficients, scaler, Platt sigmoid) as arrays in the checkpoint (``GaborSVM.state``): loading rebuilds
the fitted objects from them without unpickling anything. ``GaborSVMModule`` wraps it as a torch
module returning log-probabilities, so evaluation treats it like the networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.fft
import torch
from scipy.ndimage import map_coordinates

GABOR_SVM_NAME = "gabor_svm"
MOMENTS = ("mean", "variance", "skewness", "kurtosis", "energy")

# images per FFT batch: with the default bank (12 filters, padded 91 x 64 polar grid) this keeps the
# responses at about 35 MB
_CHUNK = 64


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"expected images of shape (N, H, W), got {images.shape}")
    return images


def polar_transform(images: np.ndarray, polar_shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """(N, H, W) images -> (N, radii, angles) bilinear samples on a polar grid about the image centre,
    radii from 0 to the inscribed circle, angles over [0, 2 pi)."""
    images = _check_images(images)
    count, height, width = images.shape
    n_radii, n_angles = polar_shape
    radii = np.linspace(0.0, (min(height, width) - 1) / 2, n_radii)[:, None]
    angles = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    rows = (height - 1) / 2 + radii * np.sin(angles)
    cols = (width - 1) / 2 + radii * np.cos(angles)
    # one 3-D interpolation for the whole batch: integer image coordinates get exact weight 1
    image_index = np.arange(count, dtype=np.float64)[:, None, None]
    coordinates = np.stack(np.broadcast_arrays(image_index, rows, cols))
    return map_coordinates(images, coordinates, order=1)


def gabor_bank(grid_shape: tuple[int, int], orientations: int, wavelengths: Sequence[float]) -> np.ndarray:
    """(orientations * len(wavelengths), *grid_shape) Fourier transforms of zero-mean complex Gabor kernels,
    laid out with the kernel centre at index (0, 0) as FFT convolution expects."""
    rows, cols = np.meshgrid(*(np.fft.fftfreq(n, 1.0 / n) for n in grid_shape), indexing="ij")
    kernels = []
    for wavelength in wavelengths:
        sigma = 0.56 * wavelength  # a one-octave bandwidth
        for orientation in np.arange(orientations) * np.pi / orientations:
            along = cols * np.cos(orientation) + rows * np.sin(orientation)
            envelope = np.exp(-(rows**2 + cols**2) / (2 * sigma**2))
            kernel = envelope * np.exp(2j * np.pi * along / wavelength)
            # remove the DC response so a flat background gives no signal
            kernel -= envelope * kernel.sum() / envelope.sum()
            kernels.append(kernel / envelope.sum())
    return scipy.fft.fft2(np.array(kernels))


def _moments(amplitudes: np.ndarray) -> np.ndarray:
    """(..., R, A) -> (..., 5): the MOMENTS of each map."""
    flat = amplitudes.reshape(*amplitudes.shape[:-2], -1)
    mean = flat.mean(axis=-1)
    centred = flat - mean[..., None]
    squared = centred**2
    variance = squared.mean(axis=-1)
    # the floor keeps skewness and kurtosis finite for a featureless (constant) response
    spread = np.sqrt(np.maximum(variance, 1e-24))
    skewness = (squared * centred).mean(axis=-1) / spread**3
    kurtosis = (squared**2).mean(axis=-1) / spread**4
    energy = np.einsum("...i,...i->...", flat, flat)
    return np.stack([mean, variance, skewness, kurtosis, energy], axis=-1)


def gabor_features(images: np.ndarray, orientations: int = 4, wavelengths: Sequence[float] = (4.0, 8.0, 16.0),
                   polar_shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    """(N, H, W) images -> (N, orientations * len(wavelengths) * 5) feature vectors, ordered filter-major
    (wavelength, then orientation) with the MOMENTS innermost."""
    images = _check_images(images)
    n_radii, n_angles = polar_shape
    # zero padding along the radius, enough for the widest kernel, so the outer edge does not wrap onto
    # the centre; the angle axis is periodic and needs none
    padding = int(np.ceil(3 * 0.56 * max(wavelengths)))
    # single precision halves the FFT work; the moments are then accumulated in double precision
    bank = gabor_bank((n_radii + padding, n_angles), orientations, wavelengths).astype(np.complex64)
    features = []
    for start in range(0, len(images), _CHUNK):
        polar = polar_transform(images[start:start + _CHUNK], polar_shape).astype(np.float32)
        spectra = scipy.fft.fft2(np.pad(polar, ((0, 0), (0, padding), (0, 0))), workers=-1)
        responses = scipy.fft.ifft2(spectra[:, None] * bank, workers=-1)[..., :n_radii, :]
        features.append(_moments(np.abs(responses).astype(np.float64)).reshape(len(polar), -1))
    return np.concatenate(features)


def _plain(value):
    """A fitted attribute as tensors and plain data (what ``torch.load(weights_only=True)`` reads back)."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("an array of Python objects cannot be stored safely")
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    raise TypeError(f"cannot store a {type(value).__name__} as plain data")


def _restored(value):
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, (list, tuple)):
        return type(value)(_restored(item) for item in value)
    if isinstance(value, dict):
        return {key: _restored(item) for key, item in value.items()}
    return value


def _attributes(estimator) -> dict:
    """Every attribute of a fitted scikit-learn object (its parameters and fitted arrays), as plain data."""
    return {key: _plain(value) for key, value in vars(estimator).items()}


def _rebuilt(cls, attributes: dict):
    """The fitted object of class ``cls`` with ``attributes``: nothing is fitted or unpickled."""
    estimator = cls.__new__(cls)
    estimator.__dict__.update({key: _restored(value) for key, value in attributes.items()})
    return estimator


class GaborSVM:
    """Gabor features -> StandardScaler -> Platt-calibrated RBF SVC."""

    def __init__(self, orientations: int = 4, wavelengths: Sequence[float] = (4.0, 8.0, 16.0),
                 polar_shape: tuple[int, int] = (64, 64), C: float = 1.0, seed: int = 0,
                 gamma: float | str = "scale", class_weight: str | None = None):
        self.class_weight = class_weight  # 'balanced': each class's errors weighted by n / (K n_class)
        self.orientations = orientations
        self.wavelengths = tuple(wavelengths)
        self.polar_shape = tuple(polar_shape)
        self.C, self.gamma, self.seed = C, gamma, seed
        self.scaler = self.calibrated = None  # the fitted StandardScaler and calibrated SVC

    def options(self) -> dict:
        return {"orientations": self.orientations, "wavelengths": list(self.wavelengths),
                "polar_shape": list(self.polar_shape), "C": self.C, "gamma": self.gamma, "seed": self.seed, "class_weight": self.class_weight}

    def features(self, images: np.ndarray) -> np.ndarray:
        return gabor_features(images, self.orientations, self.wavelengths, self.polar_shape)

    def fit(self, images: np.ndarray, labels: np.ndarray) -> GaborSVM:
        return self.fit_features(self.features(images), labels)

    def fit_features(self, features: np.ndarray, labels: np.ndarray) -> GaborSVM:
        """Fit on precomputed ``features(images)``."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        # the seed picks the cross-validation folds of the Platt scaling, hence the probabilities
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=self.seed)
        calibrated_svm = CalibratedClassifierCV(SVC(C=self.C, gamma=self.gamma, class_weight=self.class_weight), method="sigmoid", cv=folds,
                                                ensemble=False)
        pipeline = make_pipeline(StandardScaler(), calibrated_svm).fit(features, np.asarray(labels))
        self.scaler, self.calibrated = pipeline[0], pipeline[-1].calibrated_classifiers_[0]
        return self

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, n_classes) probabilities, columns in the order of the sorted class labels."""
        return self.predict_proba_features(self.features(images))

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        # what the fitted pipeline computes (CalibratedClassifierCV averages over its one calibrated
        # classifier: adding to zeros and dividing by one change no bit)
        return self.calibrated.predict_proba(self.scaler.transform(features))

    def predict(self, images: np.ndarray) -> np.ndarray:
        # the argmax of the probabilities, not the SVC's own decision (which can disagree with Platt
        # scaling), so labels and probabilities agree as they do for the networks
        return self.calibrated.classes[self.predict_proba(images).argmax(axis=1)]

    def parameter_count(self) -> int:
        """Numbers fitted: support vectors and their coefficients, intercept, scaler, Platt sigmoid."""
        svm = self.calibrated.estimator
        return int(svm.support_vectors_.size + svm.dual_coef_.size + svm.intercept_.size + self.scaler.mean_.size
                   + self.scaler.scale_.size + 2 * len(self.calibrated.calibrators))

    def state(self) -> dict:
        """The fitted model as tensors and plain data (for a checkpoint)."""
        return {"options": self.options(), "scaler": _attributes(self.scaler),
                "svc": _attributes(self.calibrated.estimator),
                "calibrators": [_attributes(calibrator) for calibrator in self.calibrated.calibrators],
                "classes": _plain(self.calibrated.classes), "method": self.calibrated.method}

    @classmethod
    def from_state(cls, state: dict) -> GaborSVM:
        from sklearn.calibration import _CalibratedClassifier, _SigmoidCalibration
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        model = cls(**state["options"])
        model.scaler = _rebuilt(StandardScaler, state["scaler"])
        model.calibrated = _CalibratedClassifier(
            _rebuilt(SVC, state["svc"]), [_rebuilt(_SigmoidCalibration, item) for item in state["calibrators"]],
            classes=_restored(state["classes"]), method=state["method"])
        return model



def build(in_channels: int = 1, num_classes: int = 2, image_size: int = 150, **options) -> GaborSVM:
    """The registry's constructor for GABOR_SVM_NAME."""
    if in_channels != 1:
        raise ValueError(f"the Gabor SVM takes one-channel images, not {in_channels} channels")
    return GaborSVM(**options)


C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
# multiples of 'scale' (1 / (n_features * variance), i.e. 1 / n_features on standardised features)
GAMMA_GRID = (0.1, 0.3, 1.0, 3.0)


def _validation_scores(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(probabilities.argmax(1) == labels))


def select_svm(fit_features: np.ndarray, fit_labels: np.ndarray, validation_features: np.ndarray,
               validation_labels: np.ndarray, seed: int = 0, C: Sequence[float] = C_GRID,
               gamma: Sequence[float] = GAMMA_GRID, selection_metric: str = "val_loss",
               feature_options: dict | None = None, class_weight: str | None = None) -> dict:
    """Fit one SVM per (C, gamma) on the fit features and keep the best on the validation features.

    ``gamma`` values are multiples of 1 / n_features ('scale' on standardised features). Ties go to
    the smaller C, then the smaller gamma (the smoother boundary). Returns the fitted model, the
    chosen C and gamma multiple and its validation loss and accuracy.
    """
    n_features = fit_features.shape[1]
    best = None
    for c_value in sorted(C):
        for gamma_multiple in sorted(gamma):
            model = GaborSVM(C=c_value, gamma=gamma_multiple / n_features, seed=seed, class_weight=class_weight,
                             **(feature_options or {}))
            model.fit_features(fit_features, fit_labels)
            loss, accuracy = _validation_scores(model.predict_proba_features(validation_features),
                                                np.asarray(validation_labels))
            key = loss if selection_metric == "val_loss" else (-accuracy, loss)
            if not math.isfinite(loss):
                continue
            if best is None or key < best["key"]:
                best = {"key": key, "model": model, "C": c_value, "gamma": gamma_multiple, "val_loss": loss,
                        "val_accuracy": accuracy}
    if best is None:
        raise ValueError("no SVM in the grid gave a finite validation loss")
    return best


class GaborSVMModule(torch.nn.Module):
    """A fitted GaborSVM as a torch module: (N, 1, H, W) images -> (N, classes) log-probabilities."""

    def __init__(self, estimator: GaborSVM):
        super().__init__()
        self.estimator = estimator

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        array = images.detach().cpu().double().numpy()
        if array.ndim == 4:
            array = array[:, 0]
        probabilities = self.estimator.predict_proba(array)
        return torch.log(torch.from_numpy(probabilities).float().clamp_min(1e-12)).to(images.device)


def module_from_state(state: dict) -> GaborSVMModule:
    """The torch module of a checkpoint's ``estimator_state``."""
    return GaborSVMModule(GaborSVM.from_state(state))
