"""The suite stands on its own: in a copy of the project with no ../shared beside it, every test module
collects, and the tests that need the shared data skip, naming it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest

from conftest import REPO

# every test that reads ../shared, and the data its skip reason must name
NEEDS_SHARED = {
    "tests/test_catalogue.py::test_frdeep_and_mirabest_share_74_sources_within_30_arcsec":
        "../shared/catalogues/mirabest.csv",
    "tests/test_catalogue.py::test_mirabest_config_plans_first_jobs_only": "../shared/mirabest/skyview-mirror",
    "tests/test_confounds.py::test_frdeep_parent_catalogues_on_real_files": "../shared/catalogues",
}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The project's files (tracked or not ignored) as they are in the working tree, in a folder with nothing
    beside it: what a clone holds once this work is committed."""
    root = tmp_path_factory.mktemp("alone") / "rgmorph"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True)
    for name in filter(None, listed.stdout.split("\0")):
        if (REPO / name).is_file():  # a file deleted in the working tree is not in a clone either
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    assert not (root.parent / "shared").exists()
    return root


def _pytest(clone, *arguments) -> subprocess.CompletedProcess:
    # the clone's own package (the project's venv installed this checkout's), no mirror from the environment
    env = {**os.environ, "PYTHONPATH": str(clone / "src")}
    env.pop("RGMORPH_SKYVIEW_MIRROR", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *arguments], cwd=clone,
                          env=env, capture_output=True, text=True)


def test_every_test_module_collects_in_a_clone_without_shared(clone):
    result = _pytest(clone, "--collect-only", "-q")
    output = result.stdout + result.stderr
    errors = re.findall(r"^ERROR .*|\d+ errors? during collection", output, flags=re.MULTILINE)
    assert result.returncode == 0 and not errors, output[-6000:]
    collected = {line.split("::")[0] for line in result.stdout.splitlines() if "::" in line}
    skipped = set(re.findall(r"^SKIPPED \[\d+\] (tests/test_\w+\.py):", result.stdout, flags=re.MULTILINE))
    modules = {f"tests/{path.name}" for path in (clone / "tests").glob("test_*.py")}
    assert modules - collected - skipped == set(), output[-6000:]


def test_tests_that_need_shared_data_skip_naming_it(clone, tmp_path):
    report = tmp_path / "junit.xml"
    result = _pytest(clone, "-q", f"--junitxml={report}", *NEEDS_SHARED)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    reasons = {}
    for case in ElementTree.parse(report).iter("testcase"):
        skipped = case.find("skipped")
        reasons[f"{case.get('classname').replace('.', '/')}.py::{case.get('name')}"] = \
            None if skipped is None else skipped.get("message")
    for test, data in NEEDS_SHARED.items():
        assert reasons.get(test) is not None and data in reasons[test], (test, reasons.get(test))


def test_every_test_reading_shared_is_listed_above():
    # a path built from REPO.parent / "shared", or a "../shared..." string (a comment naming it is fine)
    reading = {path.name for path in (REPO / "tests").glob("test_*.py")
               if re.search(r'/ "shared"|["\']\.\./shared', path.read_text()) and path.name != "test_clone_alone.py"}
    assert reading <= {test.split("::")[0].removeprefix("tests/") for test in NEEDS_SHARED}, reading
