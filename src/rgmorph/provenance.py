"""Provenance: which inputs, by sha256, each output was made from, down to the raw cutouts.

Snakemake's metadata and dvc.lock record how each file was made (rule, params, config, code,
software versions). What they do not give is the chain of contents, so every output of the
workflow gets a sidecar ``<output>.prov.json`` holding its own sha256, its rule and the path and
sha256 of each input; a dataset's sidecar also lists each raw cutout (name, file, sha256) and
catalogue row. ``rgmorph trace FILE`` follows the sidecars from a figure or table down to the
cutouts, checking every sha256 against the file on disk now.

A file without a sidecar is traced by what it holds: a metrics.json (or the predictions.csv beside
it) names its checkpoint and dataset, a dataset its cutouts, a cutout manifest its files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from rgmorph.files import sha256_file, sha256_path, write_json_atomic

SCHEMA = "rgmorph-provenance/2"
SIDECAR_SUFFIX = ".prov.json"
LEAF_KEYS = ("survey", "cutout_dir", "cutouts", "catalogue_rows")  # what a dataset record adds
_KIND_BY_NAME = {".png": "figure", ".pdf": "figure", ".pt": "model", "sources.csv": "catalogue"}


# --------------------------------------------------------------- recording


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def input_entries(inputs: Mapping) -> list[dict]:
    """[{role, path, sha256}] of the files in ``inputs`` ({role: path, list of paths or None})."""
    return [{"role": role, "path": str(path), "sha256": sha256_path(path)}
            for role, paths in inputs.items()
            for path in ([paths] if isinstance(paths, (str, Path)) else paths or [])]


def write_provenance(output: str | Path, kind: str, inputs: Mapping | None = None, rule: str | None = None,
                     details: Mapping | None = None) -> Path:
    """Write ``<output>.prov.json`` for ``output`` (which must exist) and return its path."""
    record = {"schema": SCHEMA, "kind": kind, "file": str(output), "sha256": sha256_file(output), "rule": rule,
              "inputs": input_entries(inputs or {}), **(details or {})}
    write_json_atomic(sidecar_path(output), record)
    return sidecar_path(output)


def read_provenance(path: str | Path) -> dict | None:
    sidecar = sidecar_path(path)
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None


def from_snakemake(snakemake, kind: str, outputs=None, details: Mapping | None = None,
                   inputs: Mapping | None = None) -> list[Path]:
    """Sidecars for a script rule's outputs (default: all), made from its named inputs (default: all)."""
    if inputs is None:
        inputs = dict(snakemake.input.items()) or {"input": list(snakemake.input)}
    outputs = snakemake.output if outputs is None else outputs
    return [write_provenance(output, kind, inputs, snakemake.rule, details) for output in outputs]


def dataset_details(dataset_path: str | Path, manifest_path: str | Path | None = None,
                    sources_path: str | Path | None = None) -> dict:
    """The raw cutouts (name, file, sha256) and catalogue rows a dataset .npz was built from."""
    with np.load(dataset_path, allow_pickle=False) as data:
        names, hashes = data["names"].astype(str).tolist(), data["sha256"].astype(str).tolist()
        rows = [{"name": name, "class_name": str(data["class_names"][label]), "split": str(part)}
                for name, label, part in zip(names, data["labels"], data["split"])]
        survey = str(data["survey"])
    files = {}
    if manifest_path is not None and Path(manifest_path).is_file():
        manifest = pd.read_csv(manifest_path, dtype={"name": str, "file": str})
        files = dict(zip(manifest["name"], manifest["file"]))
    if sources_path is not None and Path(sources_path).is_file():
        sources = pd.read_csv(sources_path, dtype={"name": str})
        rows = sources[sources["name"].isin(names)].to_dict("records")
    return {"survey": survey, "cutout_dir": str(Path(manifest_path).parent) if manifest_path is not None else None,
            "cutouts": [{"name": name, "file": files.get(name), "sha256": digest} for name, digest in zip(names, hashes)],
            "catalogue_rows": rows}


# ------------------------------------------------- files without a sidecar


def _dataset_from_contents(path: Path) -> tuple[list[dict], dict]:
    """(inputs, leaves) of ``results/datasets/X.npz``, beside ``results/cutouts/X/manifest.csv`` and
    ``results/catalogue/sources.csv``."""
    with np.load(path, allow_pickle=False) as data:
        survey = str(data["survey"])
    results = path.parent.parent
    neighbours = {"manifest": results / "cutouts" / survey / "manifest.csv",
                  "sources": results / "catalogue" / "sources.csv"}
    neighbours = {role: p for role, p in neighbours.items() if p.is_file()}
    leaves = dataset_details(path, neighbours.get("manifest"), neighbours.get("sources"))
    return [{"role": role, "path": str(p), "sha256": None} for role, p in neighbours.items()], leaves


def _run_from_contents(path: Path) -> tuple[dict, list[dict]]:
    """(info, inputs) of a metrics.json or predictions.csv: the run record in metrics.json."""
    metrics = path.with_name("metrics.json")
    run = json.loads(metrics.read_text()).get("run", {}) if metrics.is_file() else {}
    inputs = [{"role": role, "path": run.get(key), "sha256": run.get(f"{key}_sha256")}
              for role, key in (("checkpoint", "checkpoint"), ("pretrained", "pretrained_checkpoint"),
                                ("dataset", "dataset"))]
    info = {key: run.get(key) for key in ("model", "kind", "trained_on", "survey", "seed")}
    return info, [entry for entry in inputs if entry["path"]]


def describe_from_contents(path: Path, is_root: bool = True) -> tuple[str, dict, list[dict], dict]:
    """(kind, info, inputs, leaves) read from what a file without a sidecar holds."""
    if path.name in ("metrics.json", "predictions.csv"):
        return (path.stem, *_run_from_contents(path), {})
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            is_dataset = {"names", "sha256", "survey"} <= set(data.files)
        if is_dataset:
            inputs, leaves = _dataset_from_contents(path)
            return "dataset", {}, inputs, leaves
    if path.name == "manifest.csv" and is_root:  # below a dataset, whose own listing names each cutout
        manifest = pd.read_csv(path, dtype={"name": str, "file": str, "sha256": str})
        cutouts = manifest[["name", "file", "sha256"]].to_dict("records")
        return "cutout manifest", {}, [], {"cutout_dir": str(path.parent), "cutouts": cutouts}
    kind = "cutout manifest" if path.name == "manifest.csv" else "file"
    return _KIND_BY_NAME.get(path.name, _KIND_BY_NAME.get(path.suffix.lower(), kind)), {}, [], {}


# ------------------------------------------------------------------- tracing


def _resolve(path: str, near: Path | None) -> Path:
    """A recorded path (relative to the workflow's directory): as it is, or below a directory above ``near``."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists() or near is None:
        return candidate
    return next((parent / candidate for parent in near.resolve().parents if (parent / candidate).exists()), candidate)


def _check_cutouts(cutouts: list[dict], cutout_dir: str | None, near: Path) -> list[dict]:
    """Each cutout with ``status``: 'ok', 'changed' (sha256 differs), 'missing' or 'not checked'."""
    checked = []
    for cutout in cutouts:
        status = "not checked"
        if cutout_dir and cutout.get("file"):
            location = _resolve(str(Path(cutout_dir) / cutout["file"]), near)
            status = ("missing" if not location.is_file()
                      else "ok" if sha256_file(location) == cutout.get("sha256") else "changed")
        checked.append({**cutout, "status": status})
    return checked


def _status(actual: str, recorded: str | None) -> str:
    return "unrecorded" if recorded is None else "ok" if recorded == actual else "changed"


def trace(path: str | Path, recorded_sha256: str | None = None, role: str | None = None,
          near: Path | None = None, verify_cutouts: bool = True, _seen: dict | None = None) -> dict:
    """The provenance chain of ``path`` as a tree of dicts.

    Each node: path, role, kind, sha256 (now), recorded_sha256 (what its consumer recorded),
    status ('ok', 'changed' since recorded, 'missing' or 'unrecorded'), source ('sidecar' or
    'file contents'), info (rule, or what the file says of its run), children (its inputs) and,
    for datasets, the cutouts and catalogue rows. A file reached twice is listed once; later
    references are nodes with ``repeat`` true. A relative ``path`` not found from here is looked
    for below each directory above ``near`` (the file that recorded it).
    """
    seen = {} if _seen is None else _seen
    location = _resolve(str(path), near)
    node = {"path": str(path), "role": role, "recorded_sha256": recorded_sha256}
    if not location.exists():
        return {**node, "kind": "missing", "status": "missing", "sha256": None, "source": None, "info": {},
                "children": []}
    actual = sha256_path(location)
    node.update(sha256=actual, status=_status(actual, recorded_sha256))
    key = str(location.resolve())
    if key in seen:
        return {**node, "kind": seen[key], "repeat": True, "children": []}
    record = read_provenance(location)
    if record is not None:
        kind, info, inputs, source = record["kind"], {"rule": record.get("rule")}, record["inputs"], "sidecar"
        leaves = {key: record[key] for key in LEAF_KEYS if key in record}
        if record.get("sha256") != actual:
            node["sidecar_warning"] = "the sidecar describes another version of this file (it was rewritten since)"
    else:
        kind, info, inputs, leaves = describe_from_contents(location, is_root=_seen is None)
        kind, source = (role if kind == "file" and role else kind), "file contents"
    seen[key] = kind
    if leaves.get("cutouts") is not None and verify_cutouts:
        leaves["cutouts"] = _check_cutouts(leaves["cutouts"], leaves.get("cutout_dir"), location)
    children = [trace(entry["path"], entry.get("sha256"), entry.get("role"), location, verify_cutouts, seen)
                for entry in inputs if entry.get("path")]
    return {**node, "kind": kind, "source": source, "info": info, **leaves, "children": children}


def iter_nodes(node: Mapping):
    yield node
    for child in node.get("children", []):
        yield from iter_nodes(child)


def reached_cutout_hashes(node: Mapping) -> set[str]:
    """Every raw-cutout sha256 the chain below ``node`` reaches."""
    return {cutout["sha256"] for item in iter_nodes(node) for cutout in item.get("cutouts") or []}
