"""The configuration reference (docs/configuration-reference.md), generated from the config schema.

The schema is the one place a key's type, default and meaning are written; this page only lays them
out, one table per top-level section, so it cannot drift from what Snakemake validates against.
``python -m rgmorph.config_reference [OUTPUT]`` writes it (stdout without OUTPUT); a test checks the
committed page equals what this writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from rgmorph.files import atomic_path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
HEADER = """# Configuration reference

Every key of a study's config, generated from `workflow/schemas/config.schema.yaml` by
`python -m rgmorph.config_reference docs/configuration-reference.md` (do not edit by hand).
A key a study's config files leave out takes the default below.
"""


def rows(spec: dict, prefix: str) -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for ``spec`` and every key nested under it, depth first."""
    if "$ref" in spec:
        target = spec["$ref"].removeprefix("#/properties/").replace("/properties/", ".")
        return [(prefix, "", _default(spec), f"As `{target}`. {spec.get('description', '')}".strip())]
    found = [(prefix, _type(spec), _default(spec), spec.get("description", ""))]
    for key, child in spec.get("properties", {}).items():
        found += rows(child, f"{prefix}.{key}")
    items = spec.get("items", {})
    for key, child in items.get("properties", {}).items() if isinstance(items, dict) else ():
        found += rows(child, f"{prefix}[].{key}")
    return found


def _type(spec: dict) -> str:
    kind = spec.get("type", "enum" if "enum" in spec else "")
    text = " or ".join(map(str, kind)) if isinstance(kind, list) else str(kind)
    return text + (f": one of {', '.join(map(str, spec['enum']))}" if "enum" in spec else "")


def _default(spec: dict) -> str:
    return f"`{json.dumps(spec['default'])}`" if "default" in spec else ""


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def reference(schema_path: Path = SCHEMA) -> str:
    """The whole page as markdown."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    parts = [HEADER]
    for section, spec in schema["properties"].items():
        parts += [f"\n## `{section}`\n", "| key | type | default | description |", "|---|---|---|---|"]
        parts += [f"| `{key}` | {_cell(kind)} | {_cell(default)} | {_cell(description)} |"
                  for key, kind, default, description in rows(spec, section)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    page = reference()
    if not argv:
        sys.stdout.write(page)
        return
    with atomic_path(argv[0]) as temporary:
        Path(temporary).write_text(page)


if __name__ == "__main__":
    main()
