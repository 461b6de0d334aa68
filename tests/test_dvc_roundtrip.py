"""DVC round trip on a tiny run: dvc repro -> dvc push -> fresh git clone -> dvc pull -> snakemake.

What a collaborator does with a published run, end to end, in temporary git repositories:
the run is pushed to a directory remote, which is then served read-only over HTTP on 127.0.0.1
(as a published run is, docs/dvc.md); the clone pulls cutouts, datasets, models and metrics over
HTTP, Snakemake finds nothing to do up to the summary table and regenerates the figures only.
Also checks the rerun triggers after a pull (DVC keeps no modification times) and that
`dvc metrics` and `dvc plots` read the run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import yaml
from matplotlib.image import imread

from conftest import QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STAGES = {"fetch", "preprocess", "train", "evaluate", "report", "metrics"}
SOME_FIGURE_RULES = {"figure_gallery", "figure_preprocessing", "figure_learning_curves", "figure_roc_curves"}
SNAKEMAKE = ["snakemake", "--profile", "workflow/profiles/default",
             "--configfile", "config/config.yaml", "config/published.yaml"]
# Not copied into the temporary repository: the published run's lock and metrics (the test
# makes its own), and bulky or generated folders.
SKIPPED = ("dvc.lock", "metrics/", "results/", "resources/quickstart/skyview-mirror/", "docs/")


def run(command: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
           "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org"}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
    return result


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def served_read_only(folder: Path):
    """``folder`` over HTTP on 127.0.0.1, GET and HEAD only (a read-only remote); yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def rules_in(output: str) -> set[str]:
    """Rule names of the jobs a snakemake run (or dry run) lists."""
    return set(re.findall(r"^(?:local)?rule (\w+):", output, flags=re.MULTILINE))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): sha256(path) for path in sorted(folder.rglob("*")) if path.is_file()}


def make_repository(target: Path) -> None:
    """The project's files (as in the working tree) plus a tiny config/config.yaml, in a new git repo."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if name.startswith(SKIPPED) or name in SKIPPED or not source.is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    catalogue = pd.read_csv(QUICKSTART_CATALOGUE, dtype=str)
    # 8 sources: three training and one test source per class
    tiny = pd.concat([catalogue[(catalogue.fr_class == label) & (catalogue.split == split)].head(count)
                      for label in ("FRI", "FRII") for split, count in (("train", 3), ("test", 1))])
    tiny.to_csv(target / "resources" / "tiny-catalogue.csv", index=False)
    config = {
        "results_dir": "results",
        "class_names": ["FRI", "FRII"],
        "catalogue": {"path": "resources/tiny-catalogue.csv"},
        "surveys": {"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)", "pixels": 150}},
        "fetch": {"source": "mirror", "mirror_dir": str(QUICKSTART_MIRROR)},
        "preprocess": {"sigma": 3.0},
        "augment": {"rotate": True, "hflip": True, "vflip": True},
        "train": {"models": ["tang2019"], "seeds": [0], "epochs": 2, "threads": 1},
        "transfer": {"directions": []},  # one survey: nothing to transfer between
        "figures": {"gallery_per_class": 1, "seed": 0},
    }
    (target / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # the published run narrows the study's models; the tiny study is narrow already
    (target / "config" / "published.yaml").write_text("{}\n")
    run(["git", "init", "-q"], target)
    run(["git", "add", "-A"], target)
    run(["git", "commit", "-qm", "project"], target)


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvc")
    origin, clone = root / "origin", root / "clone"
    origin.mkdir()
    make_repository(origin)

    # 1. The published run: every stage through `dvc repro`, recorded in dvc.lock, pushed to the
    #    default remote (../../rgmorph-dvc-remote from .dvc/, i.e. root/rgmorph-dvc-remote).
    repro = run(["dvc", "repro"], origin)
    after_repro = run([*SNAKEMAKE, "--dry-run"], origin)
    run(["git", "add", "dvc.lock", "metrics"], origin)
    run(["git", "commit", "-qm", "run"], origin)
    push = run(["dvc", "push"], origin)

    # 2. A collaborator: fresh clone (no results/, no .snakemake/), the pushed remote served
    #    read-only over HTTP and set for this clone only, pull and touch, then Snakemake.
    run(["git", "clone", "-q", str(origin), str(clone)], root)
    with served_read_only(root / "rgmorph-dvc-remote") as url:
        run(["dvc", "remote", "modify", "--local", "local", "url", url], clone)
        pulled = run(["scripts/dvc-pull.sh"], clone)
    status_after_pull = run(["dvc", "status", "--json"], clone)
    dry_run = run([*SNAKEMAKE, "--dry-run"], clone)
    models_before = {path: path.stat().st_mtime_ns for path in (clone / "results" / "models").rglob("*")}
    regenerate = run(SNAKEMAKE, clone)
    return {
        "root": root, "origin": origin, "clone": clone, "repro": repro, "after_repro": after_repro,
        "push": push, "pulled": pulled, "url": url, "status_after_pull": json.loads(status_after_pull.stdout),
        "dry_run": dry_run, "regenerate": regenerate, "models_before": models_before,
    }


def test_repro_runs_every_stage_and_leaves_snakemake_nothing_to_do(round_trip):
    output = round_trip["repro"].stdout + round_trip["repro"].stderr
    for stage in STAGES:
        assert f"Running stage '{stage}'" in output
    # DVC copying outputs into its cache must not disturb Snakemake's view of them
    assert "Nothing to be done" in round_trip["after_repro"].stdout + round_trip["after_repro"].stderr
    lock = yaml.safe_load((round_trip["origin"] / "dvc.lock").read_text())
    assert set(lock["stages"]) == STAGES
    cutouts = [out for out in lock["stages"]["fetch"]["outs"] if out["path"] == "results/cutouts"]
    # the cutouts are one directory entry (8 FITS files, the manifest and its report), not one per file
    assert len(cutouts) == 1 and cutouts[0]["md5"].endswith(".dir") and cutouts[0]["nfiles"] >= 9


def test_push_fills_the_default_local_remote(round_trip):
    remote = round_trip["root"] / "rgmorph-dvc-remote"
    assert remote.is_dir() and sum(1 for path in remote.rglob("*") if path.is_file()) >= 15
    # figures are regenerated, never stored
    lock = yaml.safe_load((round_trip["origin"] / "dvc.lock").read_text())
    figures = next(out for out in lock["stages"]["report"]["outs"] if out["path"] == "results/figures")
    assert not (remote / "files" / "md5" / figures["md5"][:2] / figures["md5"][2:]).exists()


def test_pull_over_a_read_only_http_remote_restores_the_run_exactly(round_trip):
    origin, clone = round_trip["origin"], round_trip["clone"]
    assert round_trip["url"].startswith("http://127.0.0.1:")
    assert round_trip["url"] in (clone / ".dvc" / "config.local").read_text()
    for folder in ("catalogue", "cutouts", "datasets", "models", "evaluation", "tables"):
        assert digests(clone / "results" / folder) == digests(origin / "results" / folder), folder
    # only the figures are missing after the pull
    assert set(round_trip["status_after_pull"]) == {"report"}


def test_after_pull_snakemake_regenerates_the_figures_only(round_trip):
    dry_run = round_trip["dry_run"].stdout
    planned = rules_in(dry_run)
    assert SOME_FIGURE_RULES <= planned, dry_run[-3000:]
    assert all(rule.startswith("figure_") or rule == "all" for rule in planned), dry_run[-3000:]
    ran = rules_in(round_trip["regenerate"].stdout + round_trip["regenerate"].stderr)
    assert ran == planned
    clone, origin = round_trip["clone"], round_trip["origin"]
    # nothing upstream was rewritten
    assert {path: path.stat().st_mtime_ns for path in (clone / "results" / "models").rglob("*")} == \
        round_trip["models_before"]
    # the same figures as the published run's, pixel for pixel (the files themselves differ:
    # each records the commit and time that made it)
    published, remade = origin / "results" / "figures", clone / "results" / "figures"
    assert sorted(path.name for path in remade.iterdir()) == sorted(path.name for path in published.iterdir())
    for png in sorted(published.glob("*.png")):
        assert (imread(png) == imread(remade / png.name)).all(), png.name
    # DVC sees the pulled data unchanged; only the regenerated (uncached) figures differ in bytes
    status = json.loads(run(["dvc", "status", "--json"], clone).stdout)
    assert set(status) <= {"report"}, status
    assert all("results/figures" in json.dumps(change) for change in status.get("report", [])), status


def test_config_changes_after_pull_still_trigger_reruns(round_trip):
    """The touch after the pull recorded metadata: a changed parameter reruns its jobs (and only those)."""
    clone = round_trip["clone"]
    config_path = clone / "config" / "config.yaml"
    original = config_path.read_text()
    config = yaml.safe_load(original)
    config["train"]["epochs"] = 3
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        dry_run = run([*SNAKEMAKE, "--dry-run"], clone).stdout
        assert "Params have changed" in dry_run
        assert {"train", "evaluate", "summarise"} <= rules_in(dry_run)
        assert not rules_in(dry_run) & {"catalogue", "fetch", "preprocess"}
        status = json.loads(run(["dvc", "status", "--json"], clone).stdout)
        assert "train" in status and "fetch" not in status and "preprocess" not in status
    finally:
        config_path.write_text(original)


def test_dvc_metrics_and_plots_read_the_run(round_trip):
    clone = round_trip["clone"]
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], clone).stdout)
    files = shown[""]["data"] if "" in shown else next(iter(shown.values()))["data"]
    summary = files["metrics/summary.json"]["data"]
    assert 0.0 <= summary["FIRST"]["tang2019"]["accuracy_mean"] <= 1.0
    training = files["metrics/training.json"]["data"]
    assert training["FIRST"]["tang2019"]["seed0"]["epochs"] == 2
    diff = json.loads(run(["dvc", "metrics", "diff", "HEAD", "--json"], clone).stdout)
    assert not diff or all(not changes for changes in diff.values())
    plots = round_trip["root"] / "plots"
    shown = run(["dvc", "plots", "show", "-o", str(plots)], clone)
    assert "failed" not in (shown.stdout + shown.stderr).lower(), shown.stdout + shown.stderr
    page = (plots / "index.html").read_text()
    # one plot per run and curve: training and validation loss (accuracy) per epoch
    assert "metrics_loss_FIRST-tang2019-seed0_csv" in page and "metrics_accuracy_FIRST-tang2019-seed0_csv" in page
    for curve, columns in (("loss", ["train_loss", "val_loss"]), ("accuracy", ["train_accuracy", "val_accuracy"])):
        history = pd.read_csv(clone / "metrics" / curve / "FIRST-tang2019-seed0.csv")
        assert list(history.columns) == ["epoch", *columns] and len(history) == 2
