"""Confounds: parent-catalogue tagging by position and accuracy by group, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rgmorph.confounds import accuracy_by_group, parent_catalogues, redshift_bins, write_confounds_table
from rgmorph.figures.confounds import plot_confounds

from conftest import CLASS_NAMES, FULL_CATALOGUE, REPO

SHARED_CATALOGUES = REPO.parent / "shared" / "catalogues"
ARCSEC = 1 / 3600


def _sexagesimal(ra_deg: float, dec_deg: float) -> tuple[str, str]:
    from astropy.coordinates import SkyCoord
    coord = SkyCoord(ra_deg, dec_deg, unit="deg")
    return (coord.ra.to_string(unit="hourangle", sep=" ", precision=4, pad=True),
            coord.dec.to_string(sep=" ", precision=3, alwayssign=True, pad=True))


def write_parents(tmp_path, confing_rows, fricat_rows):
    """Tiny parent catalogues in the real files' column conventions."""
    confing = pd.DataFrame([{"RAJ2000": _sexagesimal(ra, dec)[0], "DEJ2000": _sexagesimal(ra, dec)[1], "mt": mt,
                             "u_mt": u_mt} for ra, dec, mt, u_mt in confing_rows],
                           columns=["RAJ2000", "DEJ2000", "mt", "u_mt"])
    fricat = pd.DataFrame([{"_RA": ra, "_DE": dec} for ra, dec in fricat_rows], columns=["_RA", "_DE"])
    confing.to_csv(tmp_path / "confing.csv", index=False)
    fricat.to_csv(tmp_path / "fricat.csv", index=False)
    return {"CoNFIG": tmp_path / "confing.csv", "FRICAT": tmp_path / "fricat.csv"}


def test_planted_positions(tmp_path):
    parents = write_parents(
        tmp_path,
        confing_rows=[(200.0, 30.0, "II", "c"), (210.0, 35.0, "C*", ""), (150.0, 20.0 + 3 * ARCSEC, "I", "c")],
        fricat_rows=[(150.0, 20.0), (160.0, -5.0)],
    )
    sources = pd.DataFrame({
        "name": ["near FRICAT", "far", "near CoNFIG", "quasar not selected", "in both"],
        "ra_deg": [160.0, 160.0, 200.0 + 1 * ARCSEC / math.cos(math.radians(30)), 210.0, 150.0],
        "dec_deg": [-5.0 + 1 * ARCSEC, -5.0 + 60 * ARCSEC, 30.0, 35.0, 20.0],
    })
    parent = parent_catalogues(sources, parents, radius_arcsec=5.0)
    assert parent.tolist() == ["FRICAT", "none", "CoNFIG", "none", "both"]
    # a tighter radius splits the pair 3" apart: only the nearer catalogue is within 1.5"
    assert parent_catalogues(sources, parents, radius_arcsec=1.5).tolist() == ["FRICAT", "none", "CoNFIG", "none",
                                                                                "FRICAT"]


def test_redshift_bins_edges_and_missing():
    bins = redshift_bins([0.0, 0.0999, 0.1, 0.6, 5.0, np.nan, "", -0.1]).tolist()
    assert bins == ["[0, 0.1)", "[0, 0.1)", "[0.1, 0.3)", "[0.6, inf)", "[0.6, inf)", "unknown", "unknown", "unknown"]


# name, class, parent position (CoNFIG / FRICAT), z, correct at seed 0, correct at seed 1
SOURCES = [
    ("S0", "FRII", "CoNFIG", 0.7, True, True),
    ("S1", "FRII", "CoNFIG", 0.4, True, True),
    ("S2", "FRII", "CoNFIG", None, True, True),
    ("S3", "FRI", "CoNFIG", 0.05, False, True),
    ("S4", "FRI", "FRICAT", 0.05, True, False),
    ("S5", "FRI", "FRICAT", 0.05, False, False),
    ("S6", "FRI", "FRICAT", 0.2, True, False),
    ("S7", "FRI", "FRICAT", 0.2, True, True),
]


@pytest.fixture
def tiny_results(tmp_path):
    positions = {name: (100.0 + k, 10.0 + k) for k, (name, *_) in enumerate(SOURCES)}
    parents = write_parents(
        tmp_path,
        confing_rows=[(*positions[name], "II" if cls == "FRII" else "I", "c") for name, cls, parent, *_ in SOURCES
                      if parent == "CoNFIG"],
        fricat_rows=[positions[name] for name, _, parent, *_ in SOURCES if parent == "FRICAT"],
    )
    sources = pd.DataFrame({
        "name": [s[0] for s in SOURCES], "ra_deg": [positions[s[0]][0] for s in SOURCES],
        "dec_deg": [positions[s[0]][1] for s in SOURCES], "class_name": [s[1] for s in SOURCES],
        "label": [CLASS_NAMES.index(s[1]) for s in SOURCES], "split": "test", "catalogue": "frdeep",
        "z": [s[3] for s in SOURCES],
    })
    sources.to_csv(tmp_path / "sources.csv", index=False)
    runs = []
    # variant A: two seeds with the planted outcomes; variant B (transfer): one seed, all correct
    for model, kind, pretrained, seed, column in [("cnn", "scratch", "", 0, 4), ("cnn", "scratch", "", 1, 5),
                                                   ("cnn", "transfer", "NVSS", 0, None)]:
        labels = np.array([CLASS_NAMES.index(s[1]) for s in SOURCES])
        correct = np.array([True] * len(SOURCES) if column is None else [s[column] for s in SOURCES])
        predicted = np.where(correct, labels, 1 - labels)
        frame = pd.DataFrame({"name": [s[0] for s in SOURCES], "label": labels, "class_name": [s[1] for s in SOURCES],
                              "probability_FRI": 1.0 - predicted, "probability_FRII": predicted.astype(float),
                              "predicted": predicted})
        path = tmp_path / f"{model}_{kind}_{seed}_predictions.csv"
        frame.to_csv(path, index=False)
        runs.append({"model": model, "kind": kind, "pretrained_on": pretrained, "trained_on": "FIRST",
                     "survey": "FIRST", "seed": seed, "predictions_file": str(path)})
    pd.DataFrame(runs).to_csv(tmp_path / "runs.csv", index=False)
    return tmp_path / "runs.csv", tmp_path / "sources.csv", parents


def _row(table, kind, grouping, group, class_name="all"):
    rows = table[(table["kind"] == kind) & (table["grouping"] == grouping) & (table["group"] == group)
                 & (table["class_name"] == class_name)]
    assert len(rows) == 1, (kind, grouping, group, class_name)
    return rows.iloc[0]


def test_accuracy_by_group_by_hand(tiny_results):
    table = accuracy_by_group(*tiny_results)
    expected = {  # (grouping, group, class): (mean, std over the two seeds, n, n_FRI, n_FRII)
        ("all", "all", "all"): (11 / 16, math.sqrt(2) / 16, 8, 5, 3),
        ("parent_catalogue", "CoNFIG", "all"): (0.875, 0.25 / math.sqrt(2), 4, 1, 3),
        ("parent_catalogue", "FRICAT", "all"): (0.5, 0.5 / math.sqrt(2), 4, 4, 0),
        ("parent_catalogue", "CoNFIG", "FRI"): (0.5, 1 / math.sqrt(2), 1, 1, 0),
        ("parent_catalogue", "CoNFIG", "FRII"): (1.0, 0.0, 3, 0, 3),
        ("parent_catalogue", "FRICAT", "FRI"): (0.5, 0.5 / math.sqrt(2), 4, 4, 0),
        ("redshift", "[0, 0.1)", "all"): (1 / 3, 0.0, 3, 3, 0),
        ("redshift", "[0.1, 0.3)", "all"): (0.75, 0.5 / math.sqrt(2), 2, 2, 0),
        ("redshift", "[0.3, 0.6)", "all"): (1.0, 0.0, 1, 0, 1),
        ("redshift", "[0.6, inf)", "all"): (1.0, 0.0, 1, 0, 1),
        ("redshift", "unknown", "all"): (1.0, 0.0, 1, 0, 1),
        ("redshift", "[0, 0.1)", "FRI"): (1 / 3, 0.0, 3, 3, 0),
    }
    for (grouping, group, class_name), (mean, std, n, n_fri, n_frii) in expected.items():
        row = _row(table, "scratch", grouping, group, class_name)
        assert row["seeds"] == 2
        assert row["accuracy_mean"] == pytest.approx(mean), (grouping, group, class_name)
        assert row["accuracy_std"] == pytest.approx(std), (grouping, group, class_name)
        assert (row["n_sources"], row["n_FRI"], row["n_FRII"]) == (n, n_fri, n_frii), (grouping, group, class_name)
    # groups that hold no source of a class get no row; the one-seed transfer variant has std 0
    assert table[(table["kind"] == "scratch") & (table["group"] == "FRICAT") & (table["class_name"] == "FRII")].empty
    transfer = _row(table, "transfer", "parent_catalogue", "FRICAT")
    assert (transfer["seeds"], transfer["accuracy_mean"], transfer["accuracy_std"]) == (1, 1.0, 0.0)
    assert transfer["pretrained_on"] == "NVSS"
    assert list(table.columns) == ["model", "kind", "pretrained_on", "trained_on", "survey", "grouping", "group",
                                   "class_name", "seeds", "accuracy_mean", "accuracy_std", "n_sources", "n_FRI",
                                   "n_FRII"]
    assert set(table.loc[table["grouping"] == "parent_catalogue", "group"]) == {"CoNFIG", "FRICAT"}


def test_table_written_and_figure(tiny_results, tmp_path):
    table_path = tmp_path / "tables" / "confounds.csv"
    written = write_confounds_table(*tiny_results, table_path)
    assert not list(table_path.parent.glob(".*part*"))
    reread = pd.read_csv(table_path, keep_default_na=False)
    assert len(reread) == len(written) and reread["accuracy_mean"].round(4).tolist() == written["accuracy_mean"].round(4).tolist()
    stem = tmp_path / "figures" / "confounds"
    plot_confounds(table_path, stem)
    png, pdf = stem.with_suffix(".png"), stem.with_suffix(".pdf")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2_000
    # an empty table still gives a figure that says why
    plot_confounds(written.iloc[:0], tmp_path / "empty")
    assert (tmp_path / "empty.png").stat().st_size > 0 and (tmp_path / "empty.pdf").stat().st_size > 0


@pytest.mark.skipif(not (SHARED_CATALOGUES / "FRICAT_Table1.csv").is_file(),
                    reason="../shared/catalogues (FRDEEP's parent catalogues) not present")
def test_frdeep_parent_catalogues_on_real_files():
    from rgmorph.catalogue import CatalogueSpec, read_catalogue

    sources = read_catalogue(FULL_CATALOGUE, CatalogueSpec(class_names=CLASS_NAMES))
    parents = {"CoNFIG": SHARED_CATALOGUES / "CoNFIG_II_full_Table.csv",
               "FRICAT": SHARED_CATALOGUES / "FRICAT_Table1.csv"}
    parent = parent_catalogues(sources, parents, radius_arcsec=5.0)
    counts = pd.crosstab(parent, sources["class_name"])
    assert (parent != "none").all()  # every FRDEEP source is in a parent catalogue
    assert counts.loc["CoNFIG", "FRII"] == (sources["class_name"] == "FRII").sum()  # all FRII from CoNFIG
    assert counts.loc["FRICAT", "FRII"] == 0
    assert counts.loc["FRICAT", "FRI"] > counts.loc["CoNFIG", "FRI"]  # most FRI from FRICAT
