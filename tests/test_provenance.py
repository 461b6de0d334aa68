"""Provenance sidecars and `rgmorph trace`: from a figure back to the raw cutouts' sha256."""

import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

import tiny_results
from rgmorph import cli, figures, provenance
from rgmorph.figures.style import embedding

matplotlib.rcParams["savefig.dpi"] = 100


@pytest.fixture(scope="module")
def traced_figure(tmp_path_factory):
    """A ROC figure made the way the workflow makes one: embedded summary, then sidecars."""
    tree = tiny_results.shared()
    stem = tmp_path_factory.mktemp("figures") / "roc_curves"
    inputs = {"metrics": tree["metrics"]}
    record = provenance.pre_output_record("figure", inputs, {}, tiny_results.CONFIG, "figure_roc_curves")
    with embedding(provenance.embedded_metadata(record)):
        figures.plot_roc_curves(tree["metrics"], stem)
    for suffix in (".png", ".pdf"):
        provenance.write_provenance(stem.with_suffix(suffix), "figure", inputs=inputs, params={},
                                    config=tiny_results.CONFIG, rule="figure_roc_curves")
    return tree, stem


def all_cutout_hashes(tree) -> set[str]:
    hashes = set()
    for path in tree["datasets"]:
        with np.load(path) as data:
            hashes |= set(data["sha256"].tolist())
    return hashes


def test_sidecar_records_hashes_config_version_and_commit(traced_figure):
    tree, stem = traced_figure
    record = provenance.read_provenance(stem.with_suffix(".png"))
    assert record["schema"] == provenance.SCHEMA and record["kind"] == "figure"
    assert record["sha256"] == provenance.sha256_file(stem.with_suffix(".png"))
    assert [entry["path"] for entry in record["inputs"]] == [str(p) for p in tree["metrics"]]
    assert all(len(entry["sha256"]) == 64 and entry["provenance"].endswith(".prov.json") for entry in record["inputs"])
    assert record["config"] == tiny_results.CONFIG and len(record["config_sha256"]) == 64
    assert record["rgmorph_version"] and record["git"]["commit"]
    assert record["versions"]["numpy"] == np.__version__


def test_trace_of_a_figure_reaches_every_cutout_hash(traced_figure):
    tree, stem = traced_figure
    chain = provenance.trace(stem.with_suffix(".png"))
    kinds = [node["kind"] for node in provenance.iter_nodes(chain)]
    assert kinds[:4] == ["figure", "metrics", "model", "dataset"]
    assert provenance.reached_cutout_hashes(chain) == all_cutout_hashes(tree)
    datasets = [node for node in provenance.iter_nodes(chain) if node["kind"] == "dataset" and not node.get("repeat")]
    assert len(datasets) == 2
    for node in datasets:
        assert all(cutout["status"] == "ok" for cutout in node["cutouts"])
        assert {row["name"] for row in node["catalogue_rows"]} == {cutout["name"] for cutout in node["cutouts"]}
    assert all(node["status"] in ("ok", "unrecorded") for node in provenance.iter_nodes(chain))


def test_trace_from_embedded_metadata_when_the_sidecar_is_gone(traced_figure, tmp_path):
    tree, stem = traced_figure
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(stem.with_suffix(".pdf").read_bytes())  # no sidecar travels with it
    chain = provenance.trace(copy)
    assert chain["source"] == "embedded"
    assert provenance.reached_cutout_hashes(chain) == all_cutout_hashes(tree)


def test_trace_without_any_sidecar_reads_the_files(tmp_path):
    tree = tiny_results.build(tmp_path, n_resamples=5)
    for sidecar in tmp_path.rglob("*" + provenance.SIDECAR_SUFFIX):
        sidecar.unlink()
    chain = provenance.trace(tree["metrics"][0])
    assert [node["kind"] for node in provenance.iter_nodes(chain)][:3] == ["metrics", "model", "dataset"]
    with np.load(tree["datasets"][0]) as data:
        assert provenance.reached_cutout_hashes(chain) == set(data["sha256"].tolist())


def test_trace_flags_a_changed_cutout_and_a_changed_input(tmp_path, capsys):
    tree = tiny_results.build(tmp_path, n_resamples=5)
    manifest = tree["results"] / "cutouts" / "FIRST" / "manifest.csv"
    first_file = manifest.read_text().splitlines()[1].split(",")[2]
    (tree["results"] / "cutouts" / "FIRST" / first_file).write_bytes(b"tampered")
    assert cli.main(["trace", "--limit", "2", str(tree["metrics"][0])]) == 1
    error = capsys.readouterr().err
    assert "1 cutout(s) differ" in error
    tree["metrics"][0].write_text(tree["metrics"][0].read_text() + " ")  # the table's input changed since
    chain = provenance.trace(tree["runs"])
    assert any(node["status"] == "changed" for node in provenance.iter_nodes(chain))


def test_cli_prints_the_chain(traced_figure):
    tree, stem = traced_figure
    result = subprocess.run([sys.executable, "-m", "rgmorph.cli", "trace", str(stem.with_suffix(".png"))],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for expected in ("figure", "metrics [metrics]", "model [checkpoint]", "dataset [dataset]", "raw cutouts: 16",
                     "catalogue rows: 16", "rule figure_roc_curves"):
        assert expected in text, expected
    assert all(digest in text for digest in all_cutout_hashes(tree))
    as_json = subprocess.run([sys.executable, "-m", "rgmorph.cli", "trace", "--json", "--no-verify",
                              str(stem.with_suffix(".png"))], capture_output=True, text=True)
    assert json.loads(as_json.stdout)["kind"] == "figure"


def test_git_commit_falls_back_outside_a_checkout(monkeypatch, tmp_path):
    provenance.git_info.cache_clear()
    monkeypatch.setenv(provenance.GIT_COMMIT_ENV, "abc123")
    assert provenance.git_info()["commit"] == "abc123"
    monkeypatch.delenv(provenance.GIT_COMMIT_ENV)
    monkeypatch.setattr(provenance.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no git")))
    provenance.git_info.cache_clear()
    assert provenance.git_info(str(tmp_path)) == {"commit": "unknown", "dirty": None, "source": "not a git checkout"}
    provenance.git_info.cache_clear()


def test_config_digest_ignores_key_order():
    assert provenance.config_sha256({"a": 1, "b": [1, 2]}) == provenance.config_sha256({"b": [1, 2], "a": 1})
    assert provenance.config_sha256({"a": 1}) != provenance.config_sha256({"a": 2})
