"""``kill -9`` in the middle of fetch, preprocess, training and a Snakemake run: the rerun resumes, reuses
every valid finished file and ends with the same results as an uninterrupted run. A damaged checkpoint stops
the run, named, and the next run remakes it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from rgmorph.catalogue import CatalogueSpec, read_catalogue
from rgmorph.fetch import FetchSettings, MirrorSource, Survey, check_cutout, cutout_filename, fetch_survey
from rgmorph.dataset import load_dataset
from rgmorph.preprocess import build_dataset
from skyview_standin import FaultPlan, FaultRule, StandInSkyView
from conftest import CLASS_NAMES, QUICKSTART_CATALOGUE, QUICKSTART_MIRROR, REPO, balanced_subset

FIRST = Survey("FIRST", "VLA FIRST (1.4 GHz)", 150)
PYTHON = sys.executable
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def _wait_for(condition, process: subprocess.Popen, timeout_s: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended (rc {process.returncode}) before {what}: "
                                 f"{process.stdout.read() if process.stdout else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _kill9(process: subprocess.Popen, group: bool = False) -> None:
    if group:
        os.killpg(process.pid, signal.SIGKILL)  # the workflow manager and every job it started
    else:
        process.kill()
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def _same_dataset(path_a: Path, path_b: Path) -> None:
    a, b = load_dataset(path_a), load_dataset(path_b)
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


@pytest.fixture(scope="module")
def twelve(quickstart_sources) -> pd.DataFrame:
    return balanced_subset(quickstart_sources, 3)


FETCH_DRIVER = """
import sys
import pandas as pd
from rgmorph.fetch import FetchSettings, Survey, fetch_survey
sources, out_dir, manifest, url = sys.argv[1:]
fetch_survey(pd.read_csv(sources), Survey("FIRST", "VLA FIRST (1.4 GHz)", 150), out_dir, manifest,
             FetchSettings(source="skyview", skyview_url=url, timeout_s=10, retries=0, max_concurrent=2))
"""


def test_kill9_during_fetch_then_the_rerun_fetches_only_what_is_missing(tmp_path, twelve):
    twelve.to_csv(tmp_path / "sources.csv", index=False)
    out, manifest_path = tmp_path / "cutouts", tmp_path / "cutouts" / "manifest.csv"
    slow = FaultPlan([FaultRule("slow", stage="fits", count=None, delay_s=0.25)])  # time to kill it mid-run
    with StandInSkyView(QUICKSTART_MIRROR, slow, match_radius_arcsec=3.0) as service:
        process = subprocess.Popen([PYTHON, "-c", FETCH_DRIVER, str(tmp_path / "sources.csv"), str(out),
                                    str(manifest_path), service.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        _wait_for(lambda: len(list(out.glob("*.fits"))) >= 4, process, what="4 cutouts were written")
        _kill9(process)
    kept = sorted(p.name for p in out.glob("*.fits"))
    assert 4 <= len(kept) < 12 and not manifest_path.exists()
    mirror = MirrorSource(QUICKSTART_MIRROR)
    expected = {cutout_filename(r.ra_deg, r.dec_deg): mirror.get(FIRST, r.ra_deg, r.dec_deg)
                for r in twelve.itertuples(index=False)}
    for name in kept:  # whatever was on disk at the kill is complete and valid
        assert (out / name).read_bytes() == expected[name]
    (out / f".{sorted(set(expected) - set(kept))[0]}.k1ll3d9x.part").write_bytes(b"SIMPLE  =  half a file")

    with StandInSkyView(QUICKSTART_MIRROR, match_radius_arcsec=3.0) as service:
        settings = FetchSettings(source="skyview", skyview_url=service.url, timeout_s=10, retries=0, max_concurrent=2)
        manifest = fetch_survey(twelve, FIRST, out, manifest_path, settings)
        fits_requests = service.count("fits")
        reference = fetch_survey(twelve, FIRST, tmp_path / "reference", tmp_path / "reference" / "manifest.csv", settings)
    assert fits_requests == 12 - len(kept)  # every finished file was reused
    assert sorted(manifest.loc[manifest["status"] == "present", "file"]) == kept
    assert set(manifest["status"]) == {"present", "ok"}
    columns = ["name", "survey", "ra_deg", "dec_deg", "file", "sha256"]
    pd.testing.assert_frame_equal(manifest[columns], reference[columns])  # as if never interrupted
    assert sorted(p.name for p in out.iterdir()) == sorted([*expected, "manifest.csv", "manifest.report.json"])
    for name, data in expected.items():
        assert (out / name).read_bytes() == data


PREPROCESS_DRIVER = """
import sys, time
import numpy as np
import pandas as pd
from rgmorph.preprocess import build_dataset
save = np.savez_compressed
def save_then_hang(handle, **arrays):  # a slow disk: the output is half way to its place
    save(handle, **arrays)
    handle.flush()
    print("WRITTEN", flush=True)
    time.sleep(120)
np.savez_compressed = save_then_hang
sources, manifest, cutouts, output = sys.argv[1:]
build_dataset(pd.read_csv(sources), pd.read_csv(manifest), cutouts, output, ["FRI", "FRII"], "FIRST")
"""


def test_kill9_while_preprocess_writes_leaves_no_dataset_and_the_rerun_matches(tmp_path, twelve):
    manifest = fetch_survey(twelve, FIRST, tmp_path / "cutouts", tmp_path / "manifest.csv",
                            FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    twelve.to_csv(tmp_path / "sources.csv", index=False)
    output = tmp_path / "datasets" / "FIRST.npz"
    process = subprocess.Popen([PYTHON, "-c", PREPROCESS_DRIVER, str(tmp_path / "sources.csv"),
                                str(tmp_path / "manifest.csv"), str(tmp_path / "cutouts"), str(output)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline() == "WRITTEN\n"
    _kill9(process)
    assert not output.exists()  # the partial file never took the dataset's name
    assert len(list(output.parent.glob(".FIRST.npz.*.part"))) == 1

    sources = pd.read_csv(tmp_path / "sources.csv")
    build_dataset(sources, manifest, tmp_path / "cutouts", output, CLASS_NAMES, "FIRST")
    build_dataset(sources, manifest, tmp_path / "cutouts", tmp_path / "reference.npz", CLASS_NAMES, "FIRST")
    assert sorted(p.name for p in output.parent.iterdir()) == ["FIRST.npz"]  # the leftover is gone
    _same_dataset(output, tmp_path / "reference.npz")


def _study_catalogue(folder: Path) -> Path:
    """12 quick-start sources (3 per class and split), in the raw catalogue's columns."""
    raw = pd.read_csv(QUICKSTART_CATALOGUE)
    raw.groupby(["fr_class", "split"]).head(3).to_csv(folder / "catalogue.csv", index=False)
    return folder / "catalogue.csv"


def _write_study(folder: Path, catalogue: Path, **sections) -> Path:
    """A tiny study's config in ``folder``: ``catalogue``, FIRST from the bundled mirror, tang2019 with one
    seed; ``sections`` are merged into its sections."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "results_dir": "results",
        "catalogue": {"path": str(catalogue)},
        # both surveys, as other settings (e.g. transfer directions) may name them; only FIRST is run
        "surveys": {"FIRST": {"skyview_name": FIRST.skyview_name, "pixels": 150},
                    "NVSS": {"skyview_name": "NVSS", "pixels": 150}},
        "fetch": {"source": "mirror", "mirror_dir": str(QUICKSTART_MIRROR)},
        "train": {"models": ["tang2019"], "seeds": [0]},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "config.yaml"


def _make_command(folder: Path, *targets: str) -> list[str]:
    """The make targets' command (the Makefile's SNAKEMAKE: scripts/snakemake-run, the default profile with
    its rerun-incomplete, 2 cores) for the study in ``folder``, run there with the repository's Snakefile."""
    return [str(REPO / "scripts" / "snakemake-run"), "--profile", str(REPO / "workflow" / "profiles" / "default"),
            "--cores", "2", "-s", str(REPO / "Snakefile"), "--configfile", str(folder / "config.yaml"), "--", *targets]


def _start_make(folder: Path, *targets: str) -> subprocess.Popen:
    """The make command in its own process group (a kill -9 of the group is a killed make)."""
    return subprocess.Popen(_make_command(folder, *targets), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, cwd=folder, env={**os.environ, "SNAKEMAKE": SNAKEMAKE})


def _run_make(folder: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(_make_command(folder, *targets), capture_output=True, text=True, timeout=600, cwd=folder,
                          env={**os.environ, "SNAKEMAKE": SNAKEMAKE})


@pytest.mark.slow  # three Snakemake invocations: 20-50 s on a busy 2-core machine
def test_kill9_of_a_snakemake_run_then_the_same_command_reruns_to_the_uninterrupted_result(tmp_path):
    _write_study(tmp_path, _study_catalogue(tmp_path))
    target = "results/datasets/FIRST.npz"
    manifest = tmp_path / "results" / "cutouts" / "FIRST" / "manifest.csv"
    process = _start_make(tmp_path, target)
    _wait_for(manifest.exists, process, what="the fetch step wrote its manifest")
    _kill9(process, group=True)
    assert not (tmp_path / target).exists()
    assert any((tmp_path / ".snakemake" / "locks").iterdir())  # the killed run's lock is left behind

    rerun = _run_make(tmp_path, target)  # rerunning the very same command must just work
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "removing the lock a stopped run left" in rerun.stderr
    fetched = pd.read_csv(manifest)
    assert set(fetched["status"]) <= {"present", "ok"} and len(fetched) == 12
    if "Rule: fetch" in rerun.stderr:  # killed before Snakemake recorded the fetch as done: it ran again
        assert set(fetched["status"]) == {"present"}  # and reused every cutout

    # The uninterrupted result, made directly with the same functions and inputs.
    sources = read_catalogue(tmp_path / "catalogue.csv", CatalogueSpec(class_names=CLASS_NAMES))
    reference_manifest = fetch_survey(sources, FIRST, tmp_path / "ref", tmp_path / "ref" / "manifest.csv",
                                      FetchSettings(mirror_dir=str(QUICKSTART_MIRROR)))
    build_dataset(sources, reference_manifest, tmp_path / "ref", tmp_path / "ref.npz", CLASS_NAMES, "FIRST")
    _same_dataset(tmp_path / target, tmp_path / "ref.npz")
    assert fetched["sha256"].tolist() == reference_manifest["sha256"].tolist()
    for row in fetched.itertuples(index=False):
        check_cutout((manifest.parent / row.file).read_bytes(), 150)


# One run of the tiny study, to the metrics of its one model: small images and a few epochs, last.pt after
# every epoch (checkpoint_interval_s 0) so that a kill lands in the middle of a resumable training
TRAINED = {"preprocess": {"size": 84}, "train": {"epochs": 10, "checkpoint_interval_s": 0}}
METRICS = "results/evaluation/FIRST/tang2019/seed0/metrics.json"
CHECKPOINT = "results/models/FIRST/tang2019/seed0/checkpoint.pt"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """A finished, never interrupted run of the tiny study (its folder); the catalogue is beside it."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    _write_study(folder / "study", _study_catalogue(folder), **TRAINED)
    done = _run_make(folder / "study", METRICS)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "study"


def _assert_same_files(folder: Path, reference: Path) -> None:
    for name in (METRICS, CHECKPOINT):
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


@pytest.mark.slow  # a killed run and its rerun: 15-40 s on a busy 2-core machine
def test_kill9_during_training_then_the_same_command_completes_with_the_uninterrupted_metrics(tmp_path, uninterrupted):
    _write_study(tmp_path, uninterrupted.parent / "catalogue.csv", **TRAINED)
    state = tmp_path / "results" / "models" / "FIRST" / "tang2019" / "last.pt"
    process = _start_make(tmp_path, METRICS)
    _wait_for(state.exists, process, timeout_s=300, what="training saved its first epoch (last.pt)")
    _kill9(process, group=True)
    assert not (tmp_path / CHECKPOINT).exists()  # killed during training

    rerun = _run_make(tmp_path, METRICS)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in (tmp_path / "results" / "logs" / "train" / "FIRST" / "tang2019" / "seed0.log").read_text()
    _assert_same_files(tmp_path, uninterrupted)


@pytest.mark.slow  # a failed rerun and a retraining: 15-40 s on a busy 2-core machine
def test_a_damaged_checkpoint_stops_the_run_naming_it_and_the_next_run_remakes_it(tmp_path, uninterrupted):
    folder = tmp_path / "study"
    shutil.copytree(uninterrupted, folder)
    damaged = folder / CHECKPOINT
    damaged.write_bytes(damaged.read_bytes()[:1000])  # cut short

    failed = _run_make(folder, METRICS)
    assert failed.returncode != 0
    log = (folder / "results" / "logs" / "evaluate" / "FIRST" / "tang2019" / "seed0.log").read_text()
    assert CHECKPOINT in log and "'train' rule" in log
    remade = _run_make(folder, METRICS)
    assert remade.returncode == 0, remade.stderr[-3000:]
    assert "rule train" in remade.stdout + remade.stderr
    _assert_same_files(folder, uninterrupted)
