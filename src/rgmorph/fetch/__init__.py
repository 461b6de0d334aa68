"""Stage 2: fetch FITS cutouts from NASA SkyView (through astroquery), from local mirrors, or from your own files.

``fetch.source``: ``skyview``; ``mirror`` (``fetch.mirror_dir``: one directory laid out like
shared/skyview-mirror, or a list of them: each source's cutout comes from the first mirror whose
index.csv holds it); ``files`` (your own cutouts, for surveys SkyView does not serve: a sources.csv
column, ``fetch.file_columns[<survey>]``, names each source's FITS/PNG/JPEG file, relative paths
resolved against ``fetch.files_dir``; see ``FileSource``).

Every file is kept byte for byte as served (FIRST headers hold tabs that astropy will not write
back), capped at ``fetch.max_cutout_bytes``, checked to be a 2-D image of the requested size
holding some signal, written atomically and recorded with its sha256 in the manifest. Only valid
files sit in the output directory, so a rerun after any crash reuses them and fetches the rest.

Manifest ``status`` per source: ``ok`` (first attempt), ``retried`` (``detail`` lists the failed
attempts), ``present`` (reused), ``blank`` (all-NaN/zero in every attempt: outside the footprint;
no file kept) or ``failed`` (``detail`` says why). Retries follow one tenacity policy
(``retry_policy``). ``fetch.on_failure``: ``stop`` ends the run listing blank/failed sources,
``exclude`` goes on without them. Whatever happens (failed checks before fetching, a service
that is down, a full disk) ``manifest.report.json`` holds the outcome, the error, counts,
failures, retries, requests, wall time, versions and the cutouts fetched so far.

One module per cutout source (``skyview``, ``mirror``, ``mirror_set``, ``own_files``), ``common`` for
what they share (errors, settings, checks, retries, rate limit), ``manifest`` for the manifest and
the report, ``run`` for the loop over a survey's sources (``fetch_survey``). Everything public is
importable from ``rgmorph.fetch``.
"""

from rgmorph.fetch.common import (BLANK_DETAIL, MAX_CUTOUT_BYTES, ON_FAILURE_CHOICES, SOURCE_CHOICES,
                                  BlankCutoutError, FetchError, FetchSettings, PermanentFetchError, RateLimiter,
                                  RetryableFetchError, Survey, check_cutout, check_fits_image, cutout_filename,
                                  is_blank, retry_policy, too_large, write_or_explain)
from rgmorph.fetch.manifest import (MANIFEST_COLUMNS, USABLE_STATUSES, library_versions, read_manifest,
                                    report_path_for)
from rgmorph.fetch.mirror import (MIRROR_ENVIRONMENT_VARIABLE, MIRROR_INDEX_COLUMNS, MIRROR_MATCH_ARCSEC,
                                  MirrorSource, mirror_dirs, mirror_setting, read_mirror_index)
from rgmorph.fetch.mirror_set import MirrorSet
from rgmorph.fetch.own_files import FITS_SUFFIXES, IMAGE_SUFFIXES, FileSource, fits_bytes, image_file_to_array
from rgmorph.fetch.run import NOT_ATTEMPTED, fetch_survey, make_source
from rgmorph.fetch.skyview import SKYVIEW_URL_ENVIRONMENT_VARIABLE, SkyViewSource

__all__ = [
    "BLANK_DETAIL", "FITS_SUFFIXES", "IMAGE_SUFFIXES", "MANIFEST_COLUMNS", "MAX_CUTOUT_BYTES",
    "MIRROR_ENVIRONMENT_VARIABLE", "MIRROR_INDEX_COLUMNS", "MIRROR_MATCH_ARCSEC", "NOT_ATTEMPTED",
    "ON_FAILURE_CHOICES", "SKYVIEW_URL_ENVIRONMENT_VARIABLE", "SOURCE_CHOICES", "USABLE_STATUSES",
    "BlankCutoutError", "FetchError", "FetchSettings", "FileSource", "MirrorSet", "MirrorSource",
    "PermanentFetchError", "RateLimiter", "RetryableFetchError", "SkyViewSource", "Survey",
    "check_cutout", "check_fits_image", "cutout_filename", "fetch_survey", "fits_bytes", "image_file_to_array",
    "is_blank", "library_versions", "make_source", "mirror_dirs", "mirror_setting", "read_manifest",
    "read_mirror_index", "report_path_for", "retry_policy", "too_large", "write_or_explain",
]
