"""The front door and the documentation site: README short, reference in step with the schema, strict build."""

import subprocess
import sys
from pathlib import Path

import yaml

from rgmorph import config_reference

REPO = Path(__file__).resolve().parents[1]


def _schema_keys(spec, prefix):
    if "$ref" not in spec:
        for key, child in spec.get("properties", {}).items():
            yield f"{prefix}.{key}"
            yield from _schema_keys(child, f"{prefix}.{key}")


def test_the_committed_reference_is_what_the_schema_generates():
    committed = (REPO / "docs" / "configuration-reference.md").read_text()
    assert committed == config_reference.reference(), \
        "docs/configuration-reference.md is stale: run python -m rgmorph.config_reference docs/configuration-reference.md"


def test_the_reference_names_every_key_with_its_default():
    schema = yaml.safe_load(config_reference.SCHEMA.read_text())
    page = config_reference.reference()
    for section, spec in schema["properties"].items():
        for key in [section, *_schema_keys(spec, section)]:
            assert f"| `{key}` |" in page, key
    assert "| `train.epochs` | integer | `60` | Training epochs. |" in page
    assert "| `catalogue.sources[].name` | string |" in page  # keys of array items


def test_the_readme_is_a_front_door_of_at_most_200_lines():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200


def test_the_site_builds_strict_and_fails_on_a_page_left_out_of_nav(tmp_path):
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(REPO / "mkdocs.yml")]
    built = subprocess.run([*build, "--site-dir", str(tmp_path / "site")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "configuration-reference" / "index.html").is_file()
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(REPO / "docs"), str(docs)], check=True)
    (docs / "orphan.md").write_text("# Not in nav\n")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text()) | {"docs_dir": str(docs)}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    orphaned = subprocess.run([*build[:-1], str(tmp_path / "mkdocs.yml"), "--site-dir", str(tmp_path / "site2")],
                              capture_output=True, text=True)
    assert orphaned.returncode != 0 and "orphan.md" in orphaned.stderr
