"""The fetch of one survey: every source through one cutout source, retried, checked, written and
recorded (``fetch_survey``)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd

from rgmorph.fetch.common import (BLANK_DETAIL, BlankCutoutError, FetchError, FetchSettings, PermanentFetchError,
                                  RateLimiter, RetryableFetchError, Survey, check_cutout, cutout_filename,
                                  retry_policy, write_or_explain)
from rgmorph.fetch.manifest import MANIFEST_COLUMNS, USABLE_STATUSES, build_report, report_path_for, write_report
from rgmorph.fetch.mirror import MIRROR_ENVIRONMENT_VARIABLE, MirrorSource, mirror_dirs
from rgmorph.fetch.mirror_set import MirrorSet
from rgmorph.fetch.own_files import FileSource
from rgmorph.fetch.skyview import SkyViewSource
from rgmorph.files import remove_stale_parts, sha256_bytes

log = logging.getLogger(__name__)

NOT_ATTEMPTED = "not attempted"


def make_source(settings: FetchSettings):
    if settings.source == "skyview":
        limiter = RateLimiter(settings.max_requests_per_s)
        return SkyViewSource(settings.skyview_url, settings.timeout_s, limiter, settings.max_cutout_bytes)
    if settings.source == "files":
        return FileSource(settings.file_columns, settings.files_dir, settings.max_cutout_bytes)
    roots = mirror_dirs(settings.mirror_dir)
    if not roots:
        raise FetchError(f"fetch.source is 'mirror' but no mirror directory is set (fetch.mirror_dir or ${MIRROR_ENVIRONMENT_VARIABLE})")
    if len(roots) == 1:
        return MirrorSource(roots[0], settings.max_cutout_bytes)
    return MirrorSet(roots, settings.max_cutout_bytes)


def _existing_file_problem(target: Path, survey: Survey, expected: str | None) -> str | None:
    """None if ``target`` is a valid cutout (matching ``expected`` when given), else why not."""
    data = target.read_bytes()
    try:
        check_cutout(data, survey.pixels)
    except RetryableFetchError as exc:
        return str(exc)
    if expected and sha256_bytes(data) != expected:
        return "its sha256 differs from the mirror's"
    return None


def _attempt(source, survey: Survey, row, errors: list[str]) -> bytes:
    """One try at a valid cutout; a retryable failure is noted in ``errors`` ('attempt N: why')."""
    try:
        data = source.get(survey, row.ra_deg, row.dec_deg)
        check_cutout(data, survey.pixels)
        return data
    except RetryableFetchError as exc:
        errors.append(f"attempt {len(errors) + 1}: {exc}")
        raise


def _given_up(record: dict, notes: list[str], errors: list[str], error: RetryableFetchError,
              settings: FetchSettings) -> dict:
    """The record of a source whose last allowed attempt failed (blank in every attempt, or failed)."""
    attempts = len(errors)
    blank = isinstance(error, BlankCutoutError) and all(BLANK_DETAIL in e for e in errors)
    if blank:
        notes.append(f"{BLANK_DETAIL} in all {attempts} attempt(s)")
    else:
        cut_short = " (retries cut short: the fetch is stopping)" if attempts <= settings.retries else ""
        notes.append(f"gave up after {attempts} attempt(s){cut_short}: " + "; ".join(errors))
    return {**record, "attempts": attempts, "status": "blank" if blank else "failed", "detail": "; ".join(notes),
            "gave_up": not blank}


def _fetch_one(source, survey: Survey, row, target: Path, settings: FetchSettings,
               abort: threading.Event | None = None) -> dict:
    """Fetch (or reuse) one source's cutout into ``target``; return its manifest record. A record
    with ``fatal`` set means the fetch cannot go on (the file cannot be written)."""
    record = {"name": row.name, "survey": survey.key, "ra_deg": row.ra_deg, "dec_deg": row.dec_deg,
              "file": target.name, "sha256": "", "status": "failed", "attempts": 0, "detail": "", "gave_up": False}
    if abort is not None and abort.is_set():
        return {**record, "detail": NOT_ATTEMPTED}
    try:
        expected = source.expected_sha256(survey, row.ra_deg, row.dec_deg)
    except PermanentFetchError as exc:
        return {**record, "detail": str(exc)}
    notes = []
    if target.is_file():
        problem = _existing_file_problem(target, survey, expected)
        if problem is None:
            return {**record, "sha256": sha256_bytes(target.read_bytes()), "status": "present"}
        # Out of the output location now: if every attempt below fails, no invalid file stays behind.
        target.unlink(missing_ok=True)
        notes.append(f"replaced an invalid earlier file ({problem})")
        log.warning("%s %s: existing %s is invalid (%s); fetching again", survey.key, row.name, target.name, problem)
    errors = []
    try:
        data = retry_policy(settings, f"{survey.key} {row.name}", abort)(_attempt, source, survey, row, errors)
    except PermanentFetchError as exc:
        return {**record, "attempts": len(errors) + 1, "detail": "; ".join([*notes, *errors, str(exc)])}
    except RetryableFetchError as exc:
        return _given_up(record, notes, errors, exc, settings)
    record["attempts"] = len(errors) + 1
    try:
        write_or_explain(target, data)
    except FetchError as exc:
        return {**record, "detail": str(exc), "fatal": True}
    if errors:
        notes.append(f"after {len(errors)} failure(s): " + "; ".join(errors))
    return {**record, "sha256": sha256_bytes(data), "status": "retried" if errors else "ok", "detail": "; ".join(notes)}


class _Breaker:
    """Trips once ``limit`` sources in a row have failed for good (0: never), or at once on a fatal record."""

    def __init__(self, limit: int, label: str):
        self.limit, self.label, self.in_a_row = limit, label, 0
        self.fatal: str | None = None  # the first fatal record's detail
        self.tripped = threading.Event()
        self._lock = threading.Lock()

    def count(self, record: dict) -> None:
        if record["detail"] == NOT_ATTEMPTED:
            return
        with self._lock:
            if record.get("fatal"):
                self.fatal = self.fatal or record["detail"]
                self.tripped.set()
                return
            self.in_a_row = self.in_a_row + 1 if record["gave_up"] else 0
            if self.limit and self.in_a_row >= self.limit and not self.tripped.is_set():
                log.error("%s: %d sources in a row failed for good; not starting the rest", self.label, self.in_a_row)
                self.tripped.set()


def _fetch_all(source, sources: pd.DataFrame, survey: Survey, out_dir: Path, settings: FetchSettings,
               breaker: _Breaker, progress_every: int) -> list[dict]:
    """Every source's record, fetched ``settings.max_concurrent`` at a time."""
    started, records = time.monotonic(), []

    def fetch_and_count(row) -> dict:
        target = out_dir / cutout_filename(row.ra_deg, row.dec_deg)
        record = _fetch_one(source, survey, row, target, settings, breaker.tripped)
        breaker.count(record)  # in the worker, so that its next source already sees a trip
        return record

    with ThreadPoolExecutor(max_workers=settings.max_concurrent) as pool:
        futures = [pool.submit(fetch_and_count, row) for row in sources.itertuples(index=False)]
        for done, future in enumerate(as_completed(futures), start=1):
            records.append(future.result())
            if records[-1]["status"] == "retried":
                log.info("%s %s: fetched %s", survey.key, records[-1]["name"], records[-1]["detail"])
            if done % progress_every == 0 or done == len(futures):
                counts = pd.Series([r["status"] for r in records]).value_counts().to_dict()
                log.info("%s: %d/%d done in %.1f s %s", survey.key, done, len(futures), time.monotonic() - started, counts)
    return records


def _outcome(manifest: pd.DataFrame, breaker: _Breaker, settings: FetchSettings, origin: str,
             report_path: Path) -> tuple[str, str | None]:
    """(outcome for the report, the FetchError message when the run must stop, else None)."""
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    survey = manifest["survey"].iloc[0] if len(manifest) else ""
    if breaker.fatal:
        return "stopped: cannot write", breaker.fatal
    if breaker.tripped.is_set():
        outcome = "stopped: service failing"
        why = (f"the fetch stopped after {settings.max_consecutive_failures} sources in a row failed for good "
               f"(is {origin} down?); rerun later: the {len(manifest) - len(unusable)} valid files are kept and reused")
    elif len(unusable) and len(unusable) == len(manifest):
        outcome, why = "stopped", "no source could be fetched, so there is nothing to go on with"
    elif len(unusable) and settings.on_failure == "stop":
        outcome = "stopped"
        why = "fetch.on_failure is 'stop'; set it to 'exclude' to go on without them, or rerun later to retry them"
    else:
        return ("complete, unusable sources excluded" if len(unusable) else "complete"), None
    listing = "\n".join(f"  {r.name}: {r.status}: {r.detail}" for r in unusable.head(20).itertuples(index=False))
    if len(unusable) > 20:
        listing += f"\n  ... and {len(unusable) - 20} more (all are listed in {report_path})"
    return outcome, f"{len(unusable)} of {len(manifest)} {survey} cutouts are unusable ({why}):\n{listing}"


def fetch_survey(sources: pd.DataFrame, survey: Survey, out_dir: str | Path, manifest_path: str | Path,
                 settings: FetchSettings, progress_every: int = 50) -> pd.DataFrame:
    """Fetch one survey's cutouts for every source; write the manifest and the report; raise FetchError per settings.

    The report (``manifest.report.json``) is written whatever happens, also when the run stops
    before or while fetching, so the failures stay visible after the workflow manager removes
    the manifest of a failed job. The manifest is written only when the run goes on.
    """
    out_dir, report_path = Path(out_dir), report_path_for(manifest_path)
    origin = {"mirror": lambda: ", ".join(mirror_dirs(settings.mirror_dir)), "skyview": lambda: settings.skyview_url,
              "files": lambda: f"files named by sources.csv column {settings.file_columns.get(survey.key)!r}"
                               + (f" under {settings.files_dir}" if settings.files_dir else "")}[settings.source]()
    started, source = time.monotonic(), None

    def report(manifest: pd.DataFrame, outcome: str, error: str | None) -> None:
        write_report(report_path, build_report(manifest, survey, settings, outcome, error, sources=len(sources),
                                                 origin=str(origin), requests=getattr(source, "requests", 0),
                                                 wall_s=round(time.monotonic() - started, 3)))

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(out_dir)  # temporary files of a run killed mid-write
    try:
        source = make_source(settings)
        source.preflight(survey, sources, settings)
    except FetchError as exc:
        report(pd.DataFrame(columns=MANIFEST_COLUMNS), "stopped: checks before fetching failed", str(exc))
        raise
    log.info("fetching %d %s cutouts (%s) from %s into %s", len(sources), survey.key, survey.skyview_name, origin, out_dir)
    breaker = _Breaker(settings.max_consecutive_failures, survey.key)
    records = _fetch_all(source, sources, survey, out_dir, settings, breaker, progress_every)
    manifest = pd.DataFrame(records).reindex(columns=MANIFEST_COLUMNS)
    manifest = manifest.set_index("name").loc[sources["name"]].reset_index()  # catalogue order
    outcome, error = _outcome(manifest, breaker, settings, origin, report_path)
    if error is None:
        try:
            write_or_explain(Path(manifest_path), manifest.to_csv(index=False).encode())
        except FetchError as exc:
            outcome, error = "stopped: cannot write", str(exc)
    report(manifest, outcome, error)
    if error is not None:
        raise FetchError(error)
    unusable = manifest[~manifest["status"].isin(USABLE_STATUSES)]
    if len(unusable):
        log.warning("%s: excluded %d of %d sources (fetch.on_failure is 'exclude'): %s", survey.key, len(unusable),
                    len(manifest), ", ".join(unusable["name"].head(20)))
    return manifest
