"""The quick start through a real SLURM cluster (sbatch jobs), with the SLURM profile unchanged.

Skipped unless a Slurm controller answers (`sinfo`), e.g. after `scripts/slurm-cluster.sh start`
as root on this machine; RGMORPH_SLURM_TESTS=1 makes a missing cluster a failure instead (CI).
Runs scripts/run-quickstart-on-slurm.sh --fast (one network, one seed, two epochs: every rule of the
quick start as an sbatch job).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def cluster_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0


if not cluster_answers():
    if os.environ.get("RGMORPH_SLURM_TESTS") == "1":
        pytest.fail("RGMORPH_SLURM_TESTS=1 but no Slurm controller answers: run scripts/slurm-cluster.sh start",
                    pytrace=False)
    pytest.skip("no Slurm cluster (scripts/slurm-cluster.sh start, or RGMORPH_SLURM_TESTS=1 to require one)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("slurm") / "results"
    env = {**os.environ, "RGMORPH_SLURM_RESULTS": str(results),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([str(REPO / "scripts" / "run-quickstart-on-slurm.sh"), "--fast"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=1800)
    return run, results


def test_every_job_ran_through_sbatch_and_completed(slurm_run):
    run, results = slurm_run
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    jobs = re.findall(r"^(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", run.stdout, flags=re.MULTILINE)
    rules = {rule.split("_wildcards_")[0] for _, rule, _, _ in jobs}
    assert {"catalogue", "fetch", "preprocess", "train", "evaluate", "summarise"} <= rules
    assert any(rule.startswith("figure_") for rule in rules)
    assert all(state == "COMPLETED" and exit_code == "0:0" for _, _, state, exit_code in jobs), run.stdout[-4000:]
    # one Slurm job per Snakemake job: each has its own Slurm log
    assert len(list((results / "slurm-logs").rglob("*.log"))) == len(jobs)
    assert (results / "tables" / "summary.csv").exists()
    assert len(pd.read_csv(results / "tables" / "runs.csv")) >= 2  # FIRST and NVSS (and the transfer run)


def test_training_jobs_ask_for_a_gpu_and_fall_back_to_the_cpu(slurm_run):
    run, results = slurm_run
    train_jobs = [line for line in run.stdout.splitlines() if re.match(r"^\d+\s+train(_transfer)?_wildcards", line)]
    assert len(train_jobs) >= 2 and all("gpu:1" in line for line in train_jobs), run.stdout[-4000:]
    # the profile's gpu=1 became the job's GPU request; with no CUDA device here, torch used the CPU
    for log in (results / "logs" / "train").rglob("*.log"):
        assert "device cpu" in log.read_text(), log
