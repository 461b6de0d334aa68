#!/usr/bin/env python
"""Load check of the fetch step: every FRDEEP cutout (658 sources x FIRST + NVSS = 1316 files) through
astroquery's real client from the local stand-in SkyView, with a share of requests failing at random.

The check passes when all files end up in the output directory, each byte-identical to the mirror
(sha256 of the index), with no partial file left; it prints the retries, requests, injected faults
and wall time. Not a test: it takes minutes.

    .venv/bin/python scripts/load_check_fetch.py                  # 10% of requests fail
    .venv/bin/python scripts/load_check_fetch.py --failure-rate 0.2 --seed 3
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]  # the stand-in SkyView is test code

from rgmorph.catalogue import CatalogueSpec, read_catalogue  # noqa: E402
from rgmorph.fetch import (FetchSettings, MirrorSource, RetryableFetchError, Survey, check_cutout,  # noqa: E402
                           cutout_filename, fetch_survey, report_path_for)
from rgmorph.files import sha256_bytes  # noqa: E402
from skyview_standin import COMMON_FAULTS, FITS_FAULTS, FaultPlan, StandInSkyView  # noqa: E402

SURVEYS = [Survey("FIRST", "VLA FIRST (1.4 GHz)", 150), Survey("NVSS", "NVSS", 150)]
# Every injected fault is a failure: a redirect is followed at once, so it is left out; 'slow'
# answers after longer than the client's timeout.
MATCH_ARCSEC = 4.0
FAILING_KINDS = tuple(kind for kind in COMMON_FAULTS + FITS_FAULTS if kind != "redirect")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", default=str(REPO.parent / "shared" / "skyview-mirror"))
    parser.add_argument("--catalogue", default=str(REPO / "resources" / "catalogues" / "frdeep_v2.csv"))
    parser.add_argument("--failure-rate", type=float, default=0.10, help="share of requests that fail (default 0.10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fault draws")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--retries", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=3.0, help="client timeout per request, seconds")
    parser.add_argument("--out", default=None, help="output directory (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    sources = read_catalogue(args.catalogue, CatalogueSpec(class_names=["FRI", "FRII"]))
    plan = FaultPlan(probability=args.failure_rate, seed=args.seed, kinds=FAILING_KINDS, delay_s=args.timeout + 2)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rgmorph-load-check-"))
    mirror = MirrorSource(args.mirror)
    reports = {}
    # astroquery sends RA rounded to 1e-3 deg, and the mirror's index holds RA rounded to 1e-3 deg
    # (from a slightly different position string): the two can differ by 3.6 arcsec at Dec 0.
    with StandInSkyView(args.mirror, plan, match_radius_arcsec=MATCH_ARCSEC) as service:
        settings = FetchSettings(source="skyview", skyview_url=service.url, timeout_s=args.timeout,
                                 retries=args.retries, backoff_s=0.05, max_backoff_s=1.0,
                                 max_concurrent=args.concurrency, on_failure="stop")
        started = time.monotonic()
        for survey in SURVEYS:
            began = time.monotonic()
            manifest = fetch_survey(sources, survey, out_root / survey.key, out_root / survey.key / "manifest.csv",
                                    settings, progress_every=10**9)
            reports[survey.key] = (manifest, time.monotonic() - began)
        wall_s = time.monotonic() - started
        served = service.count()
        faults = Counter(fault.kind for _, _, fault in plan.applied)

    valid = problems = 0
    for survey in SURVEYS:
        folder = out_root / survey.key
        for row in sources.itertuples(index=False):
            path = folder / cutout_filename(row.ra_deg, row.dec_deg)
            try:
                data = path.read_bytes()
                check_cutout(data, survey.pixels)
                assert sha256_bytes(data) == mirror.expected_sha256(survey, row.ra_deg, row.dec_deg), "sha256 differs"
                valid += 1
            except (OSError, RetryableFetchError, AssertionError) as exc:
                problems += 1
                print(f"INVALID {survey.key} {row.name}: {exc}")
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".")]
        problems += len(leftovers)
        for name in leftovers:
            print(f"LEFTOVER {survey.key}: {name}")

    failed_requests = sum(faults.values())
    sent = sum(json.loads(report_path_for(out_root / s.key / "manifest.csv").read_text())["requests"] for s in SURVEYS)
    print(f"stand-in SkyView, {args.failure_rate:.0%} of requests failing at random (seed {args.seed}; kinds: "
          f"{', '.join(FAILING_KINDS)}); client timeout {args.timeout:g} s, {args.retries} retries, "
          f"{args.concurrency} at once")
    for survey in SURVEYS:
        manifest, seconds = reports[survey.key]
        attempts = int(manifest["attempts"].sum())
        print(f"  {survey.key}: {len(manifest)} sources, status {manifest['status'].value_counts().to_dict()}, "
              f"{attempts} attempts = {attempts - len(manifest)} retries, most attempts for one source "
              f"{int(manifest['attempts'].max())}, {seconds:.1f} s")
    print(f"  HTTP requests sent {sent} (service saw {served}), failed by injection {failed_requests} "
          f"({failed_requests / served:.1%}): {dict(sorted(faults.items()))}")
    print(f"  valid files {valid} of {2 * len(sources)}, problems {problems}; wall time {wall_s:.1f} s; output {out_root}")
    ok = valid == 2 * len(sources) and problems == 0
    print("LOAD CHECK " + ("PASSED" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
