"""docs/faults.md cannot rot: every test it names exists, as a function of that name in that file."""

from __future__ import annotations

import re

from conftest import REPO

FAULTS = REPO / "docs" / "faults.md"


def _named_tests() -> list[tuple[str, str]]:
    return re.findall(r"`tests/(test_\w+\.py)::(test_\w+)`", FAULTS.read_text())


def test_the_faults_doc_names_tests_in_every_table_row():
    rows = [line for line in FAULTS.read_text().splitlines() if line.startswith("| ") and not line.startswith("| fault")
            and not line.startswith("| outcome")]
    assert len(rows) > 50 and all("`tests/" in row for row in rows), [row for row in rows if "`tests/" not in row]


def test_every_test_the_faults_doc_names_exists():
    missing = [f"tests/{file}::{name}" for file, name in _named_tests()
               if not (REPO / "tests" / file).is_file()
               or not re.search(rf"^def {name}\(", (REPO / "tests" / file).read_text(), flags=re.MULTILINE)]
    assert missing == [], "docs/faults.md names tests that do not exist:\n" + "\n".join(missing)
