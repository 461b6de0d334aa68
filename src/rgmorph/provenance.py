"""Provenance: which inputs, config, code and package version made each output.

Every output the workflow writes (dataset, model, metrics, table, figure) gets a sidecar
``<output>.prov.json`` holding its own sha256, the sha256 of each input file (and where that
input's own sidecar is), the config values the step used, the rgmorph version and the git
commit. Figures also carry a short summary inside the PNG and PDF themselves (see
``embedded_metadata``). Following the inputs from sidecar to sidecar gives the whole chain,
figure -> metrics -> model -> dataset -> cutouts + catalogue rows: ``rgmorph trace FILE``.

Files made before sidecars existed are still traceable: ``describe`` reads what a file holds
about its inputs (a metrics.json names its checkpoint and dataset, a checkpoint its dataset,
a dataset the names and sha256 of its cutouts).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
import pandas as pd

import rgmorph
from rgmorph.files import sha256_file, write_json_atomic

SCHEMA = "rgmorph-provenance/1"
SIDECAR_SUFFIX = ".prov.json"
# Key of the JSON summary inside PNG text chunks; PDFs carry the same JSON as their Keywords.
EMBEDDED_KEY = "rgmorph:provenance"
GIT_COMMIT_ENV = "RGMORPH_GIT_COMMIT"  # set where the code is not a git checkout (an sdist, a copy)
_PACKAGES = ("numpy", "pandas", "torch", "matplotlib", "astropy", "snakemake")


# ------------------------------------------------------------------ identity


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


@functools.lru_cache(maxsize=None)
def git_info(directory: str | None = None) -> dict:
    """The commit of the code, whether tracked files differ from it, and how it was found.

    Looks in the package's own checkout first (editable installs), then ``directory`` (the
    workflow's working directory). Outside any checkout it falls back to $RGMORPH_GIT_COMMIT,
    and else records the commit as "unknown" rather than failing: provenance must never stop
    a run.
    """
    if os.environ.get(GIT_COMMIT_ENV):
        return {"commit": os.environ[GIT_COMMIT_ENV], "dirty": None, "source": f"${GIT_COMMIT_ENV}"}
    candidates = [Path(rgmorph.__file__).resolve().parent, Path(directory or os.getcwd())]
    for candidate in candidates:
        try:
            commit = subprocess.run(["git", "-C", str(candidate), "rev-parse", "HEAD"], capture_output=True,
                                    text=True, timeout=10, check=True).stdout.strip()
            status = subprocess.run(["git", "-C", str(candidate), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if commit:
            return {"commit": commit, "dirty": bool(status.strip()), "source": "git"}
    return {"commit": "unknown", "dirty": None, "source": "not a git checkout"}


def package_versions() -> dict:
    versions = {"rgmorph": rgmorph.__version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def config_sha256(config: Mapping | None) -> str | None:
    """A stable digest of a config (key order does not matter)."""
    if config is None:
        return None
    canonical = json.dumps(to_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def to_jsonable(value):
    """Snakemake's Namedlist/Params, numpy scalars and paths as plain JSON values."""
    if isinstance(value, Mapping) or hasattr(value, "items") and callable(value.items):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# --------------------------------------------------------------- recording


def input_entry(role: str, path: str | Path) -> dict:
    path = Path(path)
    entry = {"role": role, "path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size}
    if sidecar_path(path).is_file():
        entry["provenance"] = str(sidecar_path(path))
    return entry


def input_entries(inputs: Mapping[str, str | Path | Iterable[str | Path]]) -> list[dict]:
    entries = []
    for role, paths in inputs.items():
        if paths is None:
            continue
        if isinstance(paths, (str, Path)):
            paths = [paths]
        entries.extend(input_entry(role, path) for path in paths)
    return entries


def build_record(output: str | Path, kind: str, inputs: Mapping | None = None, params: Mapping | None = None,
                 config: Mapping | None = None, details: Mapping | None = None, rule: str | None = None) -> dict:
    output = Path(output)
    return {
        "schema": SCHEMA,
        "kind": kind,
        "file": str(output),
        "sha256": sha256_file(output),
        "bytes": output.stat().st_size,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rule": rule,
        "workdir": os.getcwd(),
        "rgmorph_version": rgmorph.__version__,
        "git": git_info(),
        "versions": package_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:500] if sys.argv else None,
        "params": to_jsonable(params) if params is not None else None,
        "config_sha256": config_sha256(config),
        "config": to_jsonable(config) if config is not None else None,
        "inputs": input_entries(inputs or {}),
        **to_jsonable(details or {}),
    }


def write_provenance(output: str | Path, kind: str, inputs: Mapping | None = None, params: Mapping | None = None,
                     config: Mapping | None = None, details: Mapping | None = None, rule: str | None = None) -> Path:
    """Write ``<output>.prov.json`` describing ``output`` (which must exist) and return its path."""
    record = build_record(output, kind, inputs, params, config, details, rule)
    target = sidecar_path(output)
    write_json_atomic(target, record)
    return target


def write_for_outputs(outputs: Iterable[str | Path], kind: str, **options) -> list[Path]:
    return [write_provenance(path, kind, **options) for path in outputs]


def read_provenance(path: str | Path) -> dict | None:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    return json.loads(sidecar.read_text())


def from_snakemake(snakemake, kind: str, outputs: Iterable[str | Path] | None = None, details: Mapping | None = None,
                   inputs: Mapping | None = None) -> list[Path]:
    """Sidecars for a script rule's outputs: its named inputs, params and the workflow config."""
    if inputs is None:
        inputs = {key: value for key, value in snakemake.input.items()}
        if not inputs and len(snakemake.input):
            inputs = {"input": list(snakemake.input)}
    outputs = list(snakemake.output) if outputs is None else list(outputs)
    params = {key: value for key, value in snakemake.params.items()}
    return write_for_outputs(outputs, kind, inputs=inputs, params=params, config=dict(snakemake.config),
                             details=details, rule=snakemake.rule)


# ------------------------------------------------- what the data files hold


def dataset_details(dataset_path: str | Path, manifest_path: str | Path | None = None,
                    sources_path: str | Path | None = None) -> dict:
    """The cutouts (name, file, sha256) and catalogue rows a dataset .npz was built from."""
    with np.load(dataset_path, allow_pickle=False) as data:
        names = [str(name) for name in data["names"]]
        hashes = [str(value) for value in data["sha256"]]
        labels = data["labels"].tolist()
        split = [str(value) for value in data["split"]]
        survey = str(data["survey"])
        class_names = [str(name) for name in data["class_names"]]
    files = {}
    if manifest_path is not None and Path(manifest_path).is_file():
        manifest = pd.read_csv(manifest_path)
        files = dict(zip(manifest["name"].astype(str), manifest["file"].astype(str)))
    cutout_dir = str(Path(manifest_path).parent) if manifest_path is not None else None
    cutouts = [{"name": name, "file": files.get(name), "sha256": digest} for name, digest in zip(names, hashes)]
    rows = []
    if sources_path is not None and Path(sources_path).is_file():
        sources = pd.read_csv(sources_path)
        sources["name"] = sources["name"].astype(str)
        by_name = sources.set_index("name")
        for name in names:
            if name in by_name.index:
                row = by_name.loc[name]
                rows.append({"name": name, **{key: to_jsonable(row[key]) for key in by_name.columns}})
    else:
        rows = [{"name": name, "class_name": class_names[label], "split": part}
                for name, label, part in zip(names, labels, split)]
    return {
        "survey": survey,
        "cutout_dir": cutout_dir,
        "cutouts_digest": hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest(),
        "cutouts": cutouts,
        "catalogue_rows": rows,
    }


def default_dataset_neighbours(dataset_path: str | Path) -> tuple[Path | None, Path | None]:
    """``results/datasets/X.npz`` -> (``results/cutouts/X/manifest.csv``, ``results/catalogue/sources.csv``)."""
    dataset_path = Path(dataset_path)
    results = dataset_path.parent.parent
    with np.load(dataset_path, allow_pickle=False) as data:
        survey = str(data["survey"])
    manifest = results / "cutouts" / survey / "manifest.csv"
    sources = results / "catalogue" / "sources.csv"
    return (manifest if manifest.is_file() else None), (sources if sources.is_file() else None)


def embedded_metadata(record: Mapping) -> dict:
    """A short JSON summary of a provenance record, small enough for a PNG text chunk or PDF info."""
    summary = {
        "kind": record.get("kind"),
        "rule": record.get("rule"),
        "rgmorph_version": record.get("rgmorph_version"),
        "git_commit": (record.get("git") or {}).get("commit"),
        "git_dirty": (record.get("git") or {}).get("dirty"),
        "config_sha256": record.get("config_sha256"),
        "params": record.get("params"),
        "inputs": [{"role": entry["role"], "path": entry["path"], "sha256": entry["sha256"]}
                   for entry in record.get("inputs", [])],
        "sidecar": "<this file>" + SIDECAR_SUFFIX,
    }
    return summary


def pre_output_record(kind: str, inputs: Mapping | None = None, params: Mapping | None = None,
                      config: Mapping | None = None, rule: str | None = None) -> dict:
    """What is known before an output exists: for metadata embedded in the output itself."""
    return {
        "kind": kind, "rule": rule, "rgmorph_version": rgmorph.__version__, "git": git_info(),
        "config_sha256": config_sha256(config), "params": to_jsonable(params) if params is not None else None,
        "inputs": input_entries(inputs or {}),
    }


def read_embedded(path: str | Path) -> dict | None:
    """The provenance summary embedded in a PNG (text chunk) or PDF (Keywords), if any."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".png":
            from PIL import Image

            with Image.open(path) as image:
                text = image.text.get(EMBEDDED_KEY) if hasattr(image, "text") else None
            return json.loads(text) if text else None
        if path.suffix.lower() == ".pdf":
            return _pdf_keywords(path.read_bytes())
    except (OSError, ValueError):
        return None
    return None


def _pdf_keywords(data: bytes) -> dict | None:
    """Matplotlib writes the info dictionary uncompressed: /Keywords (escaped string)."""
    marker = data.find(b"/Keywords (")
    if marker < 0:
        return None
    position, depth, chunks = marker + len(b"/Keywords ("), 1, []
    while position < len(data):
        byte = data[position:position + 1]
        if byte == b"\\":
            following = data[position + 1:position + 2]
            chunks.append({b"n": b"\n", b"r": b"\r", b"t": b"\t"}.get(following, following))
            position += 2
            continue
        if byte == b"(":
            depth += 1
        elif byte == b")":
            depth -= 1
            if depth == 0:
                break
        chunks.append(byte)
        position += 1
    text = b"".join(chunks).decode("latin-1")
    prefix = EMBEDDED_KEY + " "
    if not text.startswith(prefix):
        return None
    try:
        return json.loads(text[len(prefix):])
    except ValueError:
        return None


# ------------------------------------------------------------------- tracing


class TraceNode(dict):
    """One file in a provenance chain (a dict, so ``--json`` prints it as it is)."""


def _resolve(path: str, workdir: str | None) -> Path:
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    if workdir and (Path(workdir) / candidate).exists():
        return Path(workdir) / candidate
    return candidate


def _describe_from_contents(path: Path, is_root: bool = True) -> tuple[str, dict, list[dict], dict]:
    """(kind, info, inputs, leaves) read from what the file itself holds, for files without a sidecar."""
    name, suffix = path.name, path.suffix.lower()
    if suffix in (".png", ".pdf"):
        embedded = read_embedded(path)
        if embedded:
            info = {key: embedded.get(key) for key in ("rule", "rgmorph_version", "git_commit", "config_sha256", "params")}
            return embedded.get("kind") or "figure", info, list(embedded.get("inputs", [])), {}
        return "figure", {}, [], {}
    if name == "metrics.json" or name == "predictions.csv":
        metrics_path = path if name == "metrics.json" else path.with_name("metrics.json")
        if not metrics_path.is_file():
            return "predictions", {}, [], {}
        run = json.loads(metrics_path.read_text()).get("run", {})
        inputs = [{"role": "checkpoint", "path": run.get("checkpoint"), "sha256": run.get("checkpoint_sha256")},
                  {"role": "dataset", "path": run.get("dataset"), "sha256": run.get("dataset_sha256")}]
        info = {key: run.get(key) for key in ("model", "mode", "trained_on", "survey", "seed")}
        info["environment"] = run.get("environment")
        return ("metrics" if name == "metrics.json" else "predictions"), info, [i for i in inputs if i["path"]], {}
    if suffix == ".pt":
        import torch

        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        inputs = [{"role": "dataset", "path": checkpoint.get("dataset"), "sha256": checkpoint.get("dataset_sha256")}]
        for key in ("pretrained_checkpoint", "init_checkpoint", "source_checkpoint"):
            if checkpoint.get(key):
                inputs.append({"role": "pretrained", "path": str(checkpoint[key]),
                               "sha256": checkpoint.get(f"{key}_sha256")})
        info = {key: checkpoint.get(key) for key in ("model_name", "survey", "seed", "best_epoch")}
        info["settings"] = to_jsonable(checkpoint.get("settings"))
        info["environment"] = checkpoint.get("environment")
        return "model", info, [i for i in inputs if i["path"]], {}
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            is_dataset = {"names", "sha256", "survey"} <= set(data.files)
        if is_dataset:
            manifest, sources = default_dataset_neighbours(path)
            leaves = dataset_details(path, manifest, sources)
            inputs = [{"role": role, "path": str(p), "sha256": None}
                      for role, p in (("manifest", manifest), ("sources", sources)) if p is not None]
            return "dataset", {"survey": leaves["survey"]}, inputs, leaves
    if name == "sources.csv":
        return "catalogue", {}, [], {}
    if name == "manifest.csv":
        if not is_root:  # under a dataset, whose own listing already names each cutout
            return "cutout manifest", {}, [], {}
        manifest = pd.read_csv(path)
        cutouts = [{"name": str(row.name), "file": str(row.file), "sha256": str(row.sha256)}
                   for row in manifest.itertuples(index=False)]
        return "cutout manifest", {}, [], {"cutout_dir": str(path.parent), "cutouts": cutouts}
    return "file", {}, [], {}


def _check_cutouts(cutouts: list[dict], cutout_dir: str | None, workdir: str | None) -> list[dict]:
    checked = []
    for cutout in cutouts:
        status = "not checked"
        if cutout_dir and cutout.get("file"):
            location = _resolve(str(Path(cutout_dir) / cutout["file"]), workdir)
            if not location.is_file():
                status = "missing"
            else:
                status = "ok" if sha256_file(location) == cutout.get("sha256") else "changed"
        checked.append({**cutout, "status": status})
    return checked


def trace(path: str | Path, recorded_sha256: str | None = None, role: str | None = None,
          workdir: str | None = None, verify_cutouts: bool = True, _seen: dict | None = None) -> TraceNode:
    """The provenance chain of ``path`` as a tree of TraceNode dicts.

    Each node: path, role, kind, sha256 (now), recorded_sha256 (what its consumer recorded),
    status ('ok', 'changed' since recorded, 'missing', or 'unrecorded'), source ('sidecar',
    'embedded'/'file contents'), info (rule, params, code version), children (its inputs), and
    for datasets the cutouts and catalogue rows. A file reached twice is listed once;
    later references are nodes with ``repeat`` true.
    """
    seen = {} if _seen is None else _seen
    location = _resolve(str(path), workdir)
    key = str(location.resolve()) if location.exists() else str(location)
    node = TraceNode(path=str(path), role=role, recorded_sha256=recorded_sha256)
    if not location.exists():
        node.update(kind="missing", status="missing", sha256=None, source=None, info={}, children=[])
        return node
    actual = sha256_file(location)
    node["sha256"] = actual
    node["status"] = ("unrecorded" if recorded_sha256 is None else "ok" if recorded_sha256 == actual else "changed")
    if key in seen:
        node.update(kind=seen[key], repeat=True, children=[])
        return node

    record = read_provenance(location)
    if record is not None and record.get("sha256") not in (None, actual):
        node["sidecar_warning"] = "the sidecar describes another version of this file (it was rewritten since)"
    if record is not None:
        kind, source = record.get("kind", "file"), "sidecar"
        info = {key: record.get(key) for key in ("rule", "created_utc", "rgmorph_version", "git", "versions",
                                                  "params", "config_sha256")}
        info["config"] = record.get("config")
        inputs = record.get("inputs", [])
        leaves = {key: record[key] for key in ("survey", "cutout_dir", "cutouts_digest", "cutouts", "catalogue_rows")
                  if key in record}
        record_workdir = record.get("workdir")
    else:
        kind, info, inputs, leaves = _describe_from_contents(location, is_root=_seen is None)
        if kind == "file" and role:  # e.g. the raw catalogue, named by the role its consumer gave it
            kind = role
        source = "embedded" if location.suffix.lower() in (".png", ".pdf") and inputs else "file contents"
        record_workdir = workdir
    seen[key] = kind
    node.update(kind=kind, source=source, info=info)
    if leaves.get("cutouts") is not None:
        cutouts = leaves["cutouts"]
        leaves["cutouts"] = (_check_cutouts(cutouts, leaves.get("cutout_dir"), record_workdir)
                             if verify_cutouts else cutouts)
    node.update(leaves)
    node["children"] = [
        trace(entry["path"], entry.get("sha256"), entry.get("role"), record_workdir, verify_cutouts, seen)
        for entry in inputs if entry.get("path")
    ]
    return node


def iter_nodes(node: Mapping):
    yield node
    for child in node.get("children", []):
        yield from iter_nodes(child)


def reached_cutout_hashes(node: Mapping) -> set[str]:
    """Every raw-cutout sha256 the chain below ``node`` reaches."""
    return {cutout["sha256"] for item in iter_nodes(node) for cutout in item.get("cutouts") or []}
