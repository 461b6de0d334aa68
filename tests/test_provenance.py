"""Provenance sidecars and `rgmorph trace`: from a figure back to the raw cutouts' sha256."""

import json
import subprocess
import sys

import matplotlib
import numpy as np
import pytest

import tiny_results
from rgmorph import cli, figures, provenance

matplotlib.rcParams["savefig.dpi"] = 100


@pytest.fixture(scope="module")
def traced_figure(tmp_path_factory):
    """A ROC figure made the way the workflow makes one: the plot, then its sidecars."""
    tree = tiny_results.shared()
    stem = tmp_path_factory.mktemp("figures") / "roc_curves"
    figures.plot_roc_curves(tree["metrics"], stem)
    for suffix in (".png", ".pdf"):
        provenance.write_provenance(stem.with_suffix(suffix), "figure", inputs={"metrics": tree["metrics"]},
                                    rule="figure_roc_curves")
    return tree, stem


def all_cutout_hashes(tree) -> set[str]:
    hashes = set()
    for path in tree["datasets"]:
        with np.load(path) as data:
            hashes |= set(data["sha256"].tolist())
    return hashes


def test_sidecar_records_the_output_and_each_input_by_sha256_and_nothing_snakemake_records(traced_figure):
    tree, stem = traced_figure
    record = provenance.read_provenance(stem.with_suffix(".png"))
    assert record["schema"] == provenance.SCHEMA and (record["kind"], record["rule"]) == ("figure", "figure_roc_curves")
    assert record["sha256"] == provenance.sha256_file(stem.with_suffix(".png"))
    assert record["inputs"] == [{"role": "metrics", "path": str(p), "sha256": provenance.sha256_file(p)}
                                for p in tree["metrics"]]
    assert set(record) == {"schema", "kind", "file", "sha256", "rule", "inputs"}  # no config, versions, git, host


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


def test_a_figure_without_its_sidecar_is_a_leaf(traced_figure, tmp_path):
    _, stem = traced_figure
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(stem.with_suffix(".pdf").read_bytes())  # no sidecar travels with it
    chain = provenance.trace(copy)
    assert (chain["kind"], chain["source"], chain["children"]) == ("figure", "file contents", [])


def test_trace_without_any_sidecar_reads_the_files(tmp_path):
    tree = tiny_results.build(tmp_path, n_resamples=5)
    for sidecar in tmp_path.rglob("*" + provenance.SIDECAR_SUFFIX):
        sidecar.unlink()
    chain = provenance.trace(tree["metrics"][0])
    nodes = list(provenance.iter_nodes(chain))
    assert [node["kind"] for node in nodes][:3] == ["metrics", "model", "dataset"]
    assert [node["status"] for node in nodes][1:3] == ["ok", "ok"]  # as metrics.json recorded them
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


def test_trace_from_another_directory_finds_inputs_recorded_relative_to_the_workflow(tmp_path, monkeypatch):
    tree = tiny_results.build(tmp_path, n_resamples=5)
    monkeypatch.chdir(tmp_path)  # where snakemake runs: every path is recorded relative to it
    metrics = tree["metrics"][0].relative_to(tmp_path)
    dataset = tree["datasets"][0].relative_to(tmp_path)
    manifest = tree["results"].relative_to(tmp_path) / "cutouts" / "FIRST" / "manifest.csv"
    provenance.write_provenance(dataset, "dataset", inputs={"manifest": manifest},
                                details=provenance.dataset_details(dataset, manifest), rule="preprocess")
    provenance.write_provenance(metrics, "metrics", inputs={"dataset": dataset}, rule="evaluate")
    monkeypatch.chdir(tmp_path / "results")
    chain = provenance.trace(tmp_path / metrics)
    assert [(node["kind"], node["status"]) for node in provenance.iter_nodes(chain)][:2] == [("metrics", "unrecorded"),
                                                                                         ("dataset", "ok")]
    assert {cutout["status"] for cutout in chain["children"][0]["cutouts"]} == {"ok"}
