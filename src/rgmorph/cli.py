"""The ``rgmorph`` command. ``rgmorph trace FILE`` prints where an output came from.

    rgmorph trace results/figures/roc_curves.png
    rgmorph trace --json results/tables/main_table.tex > chain.json
    rgmorph trace --limit 5 results/evaluation/FIRST/tang2019/seed0/metrics.json

The chain runs figure/table -> metrics -> model -> dataset -> raw cutouts (file and sha256)
and catalogue rows, each with its sha256 checked against the one its consumer recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from rgmorph import __version__, provenance

_MARK = {"ok": "ok", "unrecorded": "", "changed": "CHANGED since recorded", "missing": "MISSING"}


def _listing(title: str, items: list, limit: int | None, line, pad: str, out, where: str = "") -> None:
    """``title: N`` and one ``line(item)`` per item, at most ``limit`` of them."""
    print(f"{pad}    {title}: {len(items)}{where}", file=out)
    for item in items[:limit]:
        print(f"{pad}      {line(item)}", file=out)
    if limit is not None and len(items) > limit:
        print(f"{pad}      ... {len(items) - limit} more (--limit to show more)", file=out)


def _cutout_line(cutout: Mapping) -> str:
    state = f"  {cutout['status']}" if cutout.get("status") else ""
    return f"{cutout['name']:<24} {cutout.get('file') or '-':<32} sha256 {cutout['sha256']}{state}"


def _row_line(row: Mapping) -> str:
    return f"{row['name']:<24} " + ", ".join(f"{key} {value}" for key, value in row.items() if key != "name")


def render(node: Mapping, limit: int | None = None, depth: int = 0, out=sys.stdout) -> None:
    """Print the chain below ``node`` as an indented tree."""
    pad = "  " * depth
    role = f"[{node['role']}] " if node.get("role") else ""
    print(f"{pad}{node.get('kind', 'file')} {role}{node['path']}", file=out)
    status = _MARK.get(node.get("status"), node.get("status") or "")
    if node.get("sha256"):
        print(f"{pad}    sha256 {node['sha256']}{f' ({status})' if status else ''}", file=out)
    elif node.get("status") == "missing":
        print(f"{pad}    MISSING (recorded sha256 {node.get('recorded_sha256')})", file=out)
    if node.get("repeat"):
        print(f"{pad}    (its inputs are listed above)", file=out)
        return
    # 'rule figure_roc_curves' from a sidecar, or what a file says of its run ('model tang2019; seed 0')
    summary = "; ".join(f"{key} {value}" for key, value in (node.get("info") or {}).items() if value not in (None, ""))
    if summary:
        print(f"{pad}    {summary}  [from {node.get('source')}]", file=out)
    if node.get("sidecar_warning"):
        print(f"{pad}    WARNING: {node['sidecar_warning']}", file=out)
    if node.get("cutouts") is not None:
        where = f" in {node['cutout_dir']}" if node.get("cutout_dir") else ""
        _listing("raw cutouts", node["cutouts"], limit, _cutout_line, pad, out, where)
    if node.get("catalogue_rows") is not None:
        _listing("catalogue rows", node["catalogue_rows"], limit, _row_line, pad, out)
    for child in node.get("children", []):
        render(child, limit, depth + 1, out)


def _trace(arguments) -> int:
    problems = 0
    for path in arguments.files:
        chain = provenance.trace(path, verify_cutouts=not arguments.no_verify)
        if arguments.json:
            print(json.dumps(chain, indent=1, default=str))
        else:
            render(chain, arguments.limit)
        nodes = list(provenance.iter_nodes(chain))
        bad = [n for n in nodes if n.get("status") in ("changed", "missing")]
        bad_cutouts = [c for n in nodes for c in n.get("cutouts") or [] if c.get("status") in ("changed", "missing")]
        if chain.get("status") == "missing":
            print(f"rgmorph trace: {path}: no such file", file=sys.stderr)
        if bad or bad_cutouts:
            print(f"rgmorph trace: {path}: {len(bad)} file(s) and {len(bad_cutouts)} cutout(s) differ from what was "
                  "recorded or are missing: the output is stale; rerun snakemake", file=sys.stderr)
        problems += bool(bad or bad_cutouts)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rgmorph", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"rgmorph {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    trace = commands.add_parser("trace", help="print the provenance chain of an output file",
                                description="Print figure/table -> metrics -> model -> dataset -> cutouts + catalogue "
                                            "rows for an output, checking every recorded sha256.")
    trace.add_argument("files", nargs="+", help="output file(s): figure, table, metrics, checkpoint, dataset")
    trace.add_argument("--json", action="store_true", help="print the chain as JSON")
    trace.add_argument("--limit", type=int, default=None, help="list at most this many cutouts and catalogue rows "
                                                                 "per dataset (default: all)")
    trace.add_argument("--no-verify", action="store_true", help="do not re-hash the raw cutout files")
    arguments = parser.parse_args(argv)
    if arguments.command == "trace":
        return _trace(arguments)
    return 2


if __name__ == "__main__":
    sys.exit(main())
