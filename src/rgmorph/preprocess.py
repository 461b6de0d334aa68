"""Stage 3: turn raw cutouts into one normalised dataset file per survey (Tang et al. 2019, sec. 2.2).

Each image: NaN -> 0; sigma-clip the pixel distribution at 3 sigma (astropy) and set every pixel
below the upper clip bound to 0, which removes the noise background; scale to [0, 1]; optionally
centre-crop and resize. The dataset is one compressed .npz (images, labels, names, split, sha256s).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from astropy.io import fits
from astropy.stats import sigma_clip

from rgmorph.fetch import USABLE_STATUSES
from rgmorph.files import atomic_path, sha256_file

log = logging.getLogger(__name__)


class PreprocessError(ValueError):
    """An input that cannot become a dataset; the message names the file or source."""


def read_fits_image(path: str | Path, with_header: bool = False):
    """The first 2-D image in a FITS file (and its header, if asked)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SkyView's COMMENT cards hold tabs: harmless on read
        with fits.open(path, memmap=False) as hdus:
            hdu = next((hdu for hdu in hdus if hdu.data is not None and hdu.data.ndim == 2), None)
            if hdu is None:
                raise PreprocessError(f"{path} holds no 2-D image")
            image = np.array(hdu.data, dtype=np.float32)
            return (image, hdu.header.copy()) if with_header else image


def pixel_scale_arcsec(header, default: float | None = None) -> float:
    """The header's pixel scale in arcsec; ``default`` (the config's surveys.<name>.pixel_scale_arcsec) where
    the header has none, as in a cutout converted from PNG/JPEG."""
    scale = abs(float(header.get("CDELT2", header.get("CD2_2", np.nan)))) * 3600.0
    return float(default) if not np.isfinite(scale) and default else scale


def replace_nan(image: np.ndarray) -> np.ndarray:
    return np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)


def clip_background(image: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Zero every pixel below the upper bound of a ``sigma`` sigma-clip of the image."""
    _, _, upper = sigma_clip(image, sigma=sigma, maxiters=None, return_bounds=True)
    return np.where(image >= upper, image, 0.0).astype(np.float32)


def normalise(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1]; an image with no signal left stays all zero."""
    low, high = float(image.min()), float(image.max())
    if high <= low:
        return np.zeros_like(image, dtype=np.float32)
    return ((image - low) / (high - low)).astype(np.float32)


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape
    if size > min(height, width):
        raise PreprocessError(f"crop size {size} exceeds the image size {height}x{width}")
    top, left = (height - size) // 2, (width - size) // 2
    return image[top:top + size, left:left + size]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()


def inscribed_circle(size: int) -> np.ndarray:
    """(size, size) bool mask of the pixels whose centres lie inside the image's inscribed circle."""
    centre = (size - 1) / 2
    rows, cols = np.ogrid[:size, :size]
    return (rows - centre) ** 2 + (cols - centre) ** 2 <= (size / 2) ** 2


def preprocess_image(image: np.ndarray, sigma: float = 3.0, crop: int | None = None, size: int | None = None,
                     circular_mask: bool = False) -> np.ndarray:
    result = normalise(clip_background(replace_nan(image), sigma))
    if crop:
        result = centre_crop(result, crop)
    if size and size != result.shape[0]:
        result = normalise(resize(result, size))
    if circular_mask:
        # train and test then see the same field: a rotation by any angle keeps every unmasked pixel
        result = normalise(np.where(inscribed_circle(result.shape[0]), result, 0.0))
    return result


def preprocessing_steps(image: np.ndarray, sigma: float = 3.0) -> dict[str, np.ndarray]:
    """The intermediate images, for the figure that shows the method."""
    filled = replace_nan(image)
    clipped = clip_background(filled, sigma)
    return {"raw": image, "nan_to_zero": filled, "sigma_clipped": clipped, "normalised": normalise(clipped)}


def build_dataset(sources: pd.DataFrame, manifest: pd.DataFrame, cutout_dir: str | Path, output: str | Path,
                  class_names: list[str], survey: str, sigma: float = 3.0, crop: int | None = None,
                  size: int | None = None, circular_mask: bool = False, progress_every: int = 100,
                  pixel_scale: float | None = None) -> dict:
    """Preprocess every usable cutout of one survey and write the dataset .npz atomically; ``pixel_scale``
    (arcsec) stands in for a header without one."""
    cutout_dir = Path(cutout_dir)
    table, excluded = _checked_inputs(sources, manifest, cutout_dir, survey)
    images, scales = [], []
    for number, row in enumerate(table.itertuples(index=False), start=1):
        image, header = read_fits_image(cutout_dir / row.cutout_file, with_header=True)
        images.append(preprocess_image(image, sigma, crop, size, circular_mask))
        scales.append(pixel_scale_arcsec(header, pixel_scale) * (crop or image.shape[0]) / images[-1].shape[0])
        if number % progress_every == 0 or number == len(table):
            log.info("%s: preprocessed %d/%d", survey, number, len(table))
    if not np.isfinite(scales).all():
        log.warning("%s: %d cutouts have no pixel scale in their header; set surveys.%s.pixel_scale_arcsec",
                    survey, int((~np.isfinite(scales)).sum()), survey)
    images = np.stack(images).astype(np.float32)
    with atomic_path(output) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(
                handle,
                images=images,
                labels=table["label"].to_numpy(np.int64),
                names=table["name"].to_numpy(str),
                split=table["split"].to_numpy(str),
                sha256=table["sha256"].to_numpy(str),
                class_names=np.array(class_names, dtype=str),
                pixel_scale_arcsec=np.array(scales, dtype=np.float64),
                survey=np.array(survey),
            )
    summary = {"survey": survey, "sources": int(len(table)), "excluded": int(len(excluded)),
               "shape": list(images.shape[1:]),
               **{f"{s}_count": int((table["split"] == s).sum()) for s in sorted(set(table["split"]))}}
    log.info("%s dataset: %s", survey, summary)
    return summary


def _checked_inputs(sources: pd.DataFrame, manifest: pd.DataFrame, cutout_dir: Path, survey: str):
    """The usable (source, cutout) rows and the excluded manifest rows; PreprocessError listing every
    problem before any image is processed."""
    missing = [column for column in ("name", "file", "sha256", "status", "detail") if column not in manifest.columns]
    if missing:
        raise PreprocessError(f"{survey} manifest lacks column(s) {missing}; rerun the fetch step")
    unlisted = sorted(set(sources["name"]) - set(manifest["name"]))
    if unlisted:
        raise PreprocessError(f"{survey} manifest lists no cutout for {len(unlisted)} catalogue source(s) "
                              f"({', '.join(unlisted[:10])}); it belongs to another catalogue: rerun the fetch step")
    usable = manifest[manifest["status"].isin(USABLE_STATUSES)]
    excluded = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    for row in excluded.itertuples(index=False):
        log.warning("%s %s excluded from the dataset: %s (%s)", survey, row.name, row.status, row.detail)
    if len(excluded):
        log.warning("%s: %d of %d sources excluded from the dataset (see the fetch report)", survey, len(excluded),
                    len(manifest))
    # only the columns used here: a carried catalogue column (e.g. 'file') must not meet the manifest's
    table = sources[["name", "label", "split"]].merge(
        usable[["name", "file", "sha256"]].rename(columns={"file": "cutout_file"}), on="name", how="inner",
        validate="one_to_one")
    if table.empty:
        raise PreprocessError(f"no usable {survey} cutouts: the manifest lists none with status in {USABLE_STATUSES}")
    problems = []
    for row in table.itertuples(index=False):
        path = cutout_dir / row.cutout_file
        if not path.is_file():
            problems.append(f"{survey} cutout for {row.name} is missing: {path}")
        elif sha256_file(path) != row.sha256:
            problems.append(f"{survey} cutout {path} for {row.name} differs from its manifest sha256")
    if problems:
        listing = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise PreprocessError(f"{len(problems)} {survey} cutout(s) cannot be used:\n  {listing}\n"
                              "Rerun the fetch step: it fetches missing or changed files again.")
    return table, excluded


