"""Your own cutouts (``fetch.source: files``): FITS, PNG or JPEG files named by a sources.csv column."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from astropy.io import fits

from rgmorph.fetch.common import (MAX_CUTOUT_BYTES, FetchError, FetchSettings, PermanentFetchError,
                                  RetryableFetchError, Survey, check_cutout, is_blank, too_large)
from rgmorph.files import sha256_bytes

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def image_file_to_array(path: Path) -> np.ndarray:
    """A PNG/JPEG as a 2-D float32 array, rows flipped so that row 0 is the bottom as in FITS.
    Grey images keep their values (8 or 16 bit, or float); RGB(A) and palette images become
    their luminance 0.299 R + 0.587 G + 0.114 B (alpha dropped); grey+alpha keeps the grey channel."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("RGB")
            array = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise PermanentFetchError(f"unreadable image ({exc})") from None
    if array.ndim == 3:
        array = (array[..., 0] if array.shape[2] < 3
                 else 0.299 * array[..., 0] + 0.587 * array[..., 1] + 0.114 * array[..., 2])
    if array.ndim != 2:
        raise PermanentFetchError(f"image has {array.ndim} dimensions, not 2")
    return np.ascontiguousarray(np.flipud(array), dtype=np.float32)


def fits_bytes(image: np.ndarray, origin: Path) -> bytes:
    """A FITS file holding ``image``, with the file it came from in its header (deterministic bytes)."""
    hdu = fits.PrimaryHDU(image.astype(np.float32))
    hdu.header["ORIGFILE"] = (origin.name[-68:], "image file this cutout was converted from")
    hdu.header["COMMENT"] = "Converted by rgmorph.fetch (fetch.source: files); rows flipped to FITS order."
    buffer = io.BytesIO()
    hdu.writeto(buffer)
    return buffer.getvalue()


class FileSource:
    """Your own cutouts: a sources.csv column (``fetch.file_columns[<survey>]``, carried from the
    catalogue with ``catalogue.carry``) names each source's file; relative paths are resolved against
    ``fetch.files_dir``. FITS files (.fits, .fit, .fts, optionally .gz) are kept byte for byte
    (gunzipped); PNG/JPEG files are read with Pillow (see ``image_file_to_array``) and written as a
    FITS file, so the preprocess step reads every cutout the same way. Each is checked like a fetched
    cutout (2-D, ``surveys.<name>.pixels`` square, not blank); a file that is missing, unreadable or
    wrong fails its source with its sources.csv line, name and path (fetch.on_failure then applies)."""

    def __init__(self, file_columns: dict, files_dir: str | Path | None = None, max_bytes: int = MAX_CUTOUT_BYTES):
        self.file_columns = dict(file_columns)
        self.files_dir = Path(files_dir) if files_dir else None
        self.max_bytes = max_bytes
        self.requests = 0
        self._rows = {}  # (ra, dec) -> (sources.csv line, name, path or None)
        self._pixels = None

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        column = self.file_columns.get(survey.key)
        if not column:
            raise FetchError(f"fetch.source is 'files' but fetch.file_columns names no column for survey {survey.key}; "
                             f"add `{survey.key}: <catalogue column holding each source's file>`")
        if column not in sources.columns:
            raise FetchError(f"sources.csv has no column '{column}' (fetch.file_columns.{survey.key}); list it under "
                             f"the catalogue's carry so that the catalogue step copies it into sources.csv "
                             f"(sources.csv has {list(sources.columns)})")
        if self.files_dir is not None and not self.files_dir.is_dir():
            raise FetchError(f"fetch.files_dir {self.files_dir} is not a directory")
        for line, (row, value) in enumerate(zip(sources.itertuples(index=False), sources[column]), start=2):
            path = None
            if isinstance(value, str) and value.strip():
                path = Path(value.strip())
                if not path.is_absolute() and self.files_dir is not None:
                    path = self.files_dir / path
            self._rows[(row.ra_deg, row.dec_deg)] = (line, row.name, path, column)

    def _where(self, ra_deg: float, dec_deg: float) -> tuple[str, Path | None]:
        line, name, path, column = self._rows[(ra_deg, dec_deg)]
        return f"source {name} (sources.csv line {line}, column {column})", path

    def _load(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        where, path = self._where(ra_deg, dec_deg)
        if path is None:
            raise PermanentFetchError(f"{where}: no file named")
        if not path.is_file():
            raise PermanentFetchError(f"{where}: file {path} is missing")
        name = path.name.lower()
        try:
            if name.endswith(FITS_SUFFIXES):
                if path.stat().st_size > self.max_bytes and not name.endswith(".gz"):
                    raise too_large(str(path), self.max_bytes)
                try:
                    with (gzip.open if name.endswith(".gz") else open)(path, "rb") as handle:
                        data = handle.read(self.max_bytes + 1)
                except (OSError, EOFError, zlib.error) as exc:
                    raise PermanentFetchError(f"cannot read it ({exc})") from None
                if len(data) > self.max_bytes:
                    raise too_large(f"{path} (uncompressed)", self.max_bytes)
                check_cutout(data, survey.pixels)
                return data
            if name.endswith(IMAGE_SUFFIXES):
                if path.stat().st_size > self.max_bytes:
                    raise too_large(str(path), self.max_bytes)
                image = image_file_to_array(path)
                if image.shape != (survey.pixels, survey.pixels):
                    raise PermanentFetchError(f"image is {image.shape[0]}x{image.shape[1]}, expected "
                                              f"{survey.pixels}x{survey.pixels} (surveys.{survey.key}.pixels)")
                if is_blank(image):
                    raise PermanentFetchError("blank image (all NaN/zero)")
                return fits_bytes(image, path)
        except (PermanentFetchError, RetryableFetchError) as exc:
            raise PermanentFetchError(f"{where}: file {path}: {exc}") from None
        raise PermanentFetchError(f"{where}: file {path}: unsupported type; use FITS ({', '.join(FITS_SUFFIXES)}) "
                                  f"or {', '.join(IMAGE_SUFFIXES)}")

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return sha256_bytes(self._load(survey, ra_deg, dec_deg))

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        return self._load(survey, ra_deg, dec_deg)
