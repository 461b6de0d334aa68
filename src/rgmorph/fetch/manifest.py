"""The fetch's records: the manifest (one row per source) that later stages read, and the report
(``manifest.report.json``) written whatever the outcome."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import platform
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from rgmorph import files
from rgmorph.fetch.common import FetchError, FetchSettings, Survey, write_or_explain

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["name", "survey", "ra_deg", "dec_deg", "file", "sha256", "status", "attempts", "detail"]
USABLE_STATUSES = ("ok", "retried", "present")


def library_versions() -> dict:
    """Versions of what shaped the fetched bytes, for the report."""
    packages = ("rgmorph", "astroquery", "astropy", "requests", "numpy", "pandas", "tenacity")
    versions = {package: importlib.metadata.version(package) for package in packages}
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}


def read_manifest(path: str | Path) -> pd.DataFrame:
    """A survey's manifest.csv as the later stages read it; a damaged one is set aside for the fetch rule."""
    text_columns = {column: str for column in ("name", "survey", "file", "sha256", "status", "detail")}
    return files.read_checked_csv(path, "fetch", ["name", "file", "sha256", "status", "detail"],
                                  filled_columns=["name", "status"], dtype=text_columns)


def report_path_for(manifest_path: str | Path) -> Path:
    """Where fetch_survey writes its report: ``manifest.csv`` -> ``manifest.report.json``."""
    return Path(manifest_path).with_suffix(".report.json")


def build_report(manifest: pd.DataFrame, survey: Survey, settings: FetchSettings, outcome: str, error: str | None,
            **facts) -> dict:
    """The run's report: ``facts`` (sources, origin, requests, wall_s) and what ``manifest`` holds."""
    attempts = int(manifest["attempts"].sum())
    usable = manifest["status"].isin(USABLE_STATUSES)
    return {
        "survey": survey.key, "skyview_name": survey.skyview_name, "source": settings.source, **facts,
        "outcome": outcome, "error": error, "usable": int(usable.sum()),
        "counts": {status: int(n) for status, n in manifest["status"].value_counts().sort_index().items()},
        "attempts": attempts, "retries": attempts - int((manifest["attempts"] > 0).sum()),
        "unusable": [{"name": r.name, "status": r.status, "attempts": int(r.attempts), "detail": r.detail}
                     for r in manifest[~usable].itertuples(index=False)],
        "retried": [{"name": r.name, "attempts": int(r.attempts), "detail": r.detail}
                    for r in manifest[manifest["status"] == "retried"].itertuples(index=False)],
        "fetched": [{"name": r.name, "file": r.file, "sha256": r.sha256, "status": r.status}
                    for r in manifest[usable].itertuples(index=False)],
        "settings": dataclasses.asdict(settings), "environment": library_versions(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(report_path: Path, report: dict) -> None:
    """Write the report and log its summary; a report that cannot be written is logged, never raised."""
    try:
        write_or_explain(report_path, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    except FetchError as exc:
        log.error("%s: no fetch report: %s", report["survey"], exc)
    log.info("%s summary: %s; %s; %d attempts (%d retries), %d HTTP requests, %.1f s; report %s", report["survey"],
             report["outcome"], report["counts"], report["attempts"], report["retries"], report["requests"],
             report["wall_s"], report_path)
    for entry in report["unusable"]:
        log.warning("%s %s: %s: %s", report["survey"], entry["name"], entry["status"], entry["detail"])
