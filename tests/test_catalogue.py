import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from rgmorph.catalogue import (CatalogueError, CatalogueSpec, build_sources, catalogue_paths, parse_angle,
                               read_catalogue, stratified_split, write_catalogue_stage)
from rgmorph.neighbours import NeighbourSettings, field_overlap, resolve_neighbours, survey_fields
from conftest import CLASS_NAMES, FULL_CATALOGUE, REPO


def test_frdeep_catalogue_has_the_published_split():
    sources = read_catalogue(FULL_CATALOGUE, CatalogueSpec(class_names=CLASS_NAMES))
    counts = sources.groupby(["class_name", "split"]).size().to_dict()
    assert counts == {("FRI", "test"): 81, ("FRI", "train"): 188, ("FRII", "test"): 117, ("FRII", "train"): 272}
    first = sources.iloc[0]
    # 4C 31.30: 07 45 42.13 +31 42 52.6 -> 15 * (7 + 45/60 + 42.13/3600) deg, 31 + 42/60 + 52.6/3600 deg
    assert first["name"] == "4C 31.30"
    assert first["ra_deg"] == pytest.approx(15 * (7 + 45 / 60 + 42.13 / 3600), abs=1e-9)
    assert first["dec_deg"] == pytest.approx(31 + 42 / 60 + 52.6 / 3600, abs=1e-9)
    assert first["label"] == 1 and first["class_name"] == "FRII"


@pytest.mark.parametrize("text, kind, expected", [
    ("116.4255", "ra", 116.4255),
    ("07:45:42.13", "ra", 116.42554166666667),
    ("-02 46 46.0", "dec", -(2 + 46 / 60 + 46 / 3600)),
    ("-0 30 00", "dec", -0.5),  # the sign of a zero-degree declination must survive
])
def test_parse_angle_accepts_degrees_and_sexagesimal(text, kind, expected):
    assert parse_angle(text, kind) == pytest.approx(expected, abs=1e-9)


def _write(tmp_path, rows, header="name,ra,dec,fr_class,split"):
    path = tmp_path / "catalogue.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


GOOD_ROWS = ["A,10.0,1.0,FRI,train", "B,20.0,2.0,FRII,train", "C,30.0,3.0,FRI,test", "D,40.0,4.0,FRII,test"]


@pytest.mark.parametrize("bad_row, message", [
    ("E,25 99 00,5.0,FRI,train", "catalogue row 6 (E): ra"),
    ("E,50.0,+95 00 00,FRI,train", "catalogue row 6 (E): dec '+95 00 00' is out of range"),
    ("E,50.0,5.0,FRIII,train", "catalogue row 6 (E): label 'FRIII'"),
    ("A,50.0,5.0,FRI,train", "catalogue row 6 (A): duplicate name, also at catalogue row 2"),
    ("E,10.0001,1.0,FRI,train", "catalogue row 6 (E): position within 1.0 arcsec of catalogue row 2 (A)"),
    ("E,50.0,5.0,FRI,holdout", "catalogue row 6 (E): split 'holdout' is not one of"),
])
def test_bad_rows_are_named(tmp_path, bad_row, message):
    with pytest.raises(CatalogueError) as error:
        read_catalogue(_write(tmp_path, [*GOOD_ROWS, bad_row]), CatalogueSpec(class_names=CLASS_NAMES))
    assert message in str(error.value)


def test_missing_column_is_named(tmp_path):
    path = _write(tmp_path, ["A,10.0,1.0,train"], header="name,ra,dec,split")
    with pytest.raises(CatalogueError, match=r"lacks column\(s\) \['fr_class'\]"):
        read_catalogue(path, CatalogueSpec(class_names=CLASS_NAMES))


def test_columns_selection_and_label_map_are_configurable(tmp_path):
    path = _write(tmp_path, [
        "A,10.0,1.0,I,c", "B,20.0,2.0,II,c", "C,30.0,3.0,II,u", "D,40.0,4.0,I,c", "E,50.0,5.0,II,c",
        "F,60.0,6.0,I,c", "G,70.0,7.0,II,c", "H,80.0,8.0,I,c",
    ], header="source,RAdeg,DEdeg,mt,u_mt")
    spec = CatalogueSpec(class_names=CLASS_NAMES, name_column="source", ra_column="RAdeg", dec_column="DEdeg",
                         label_column="mt", split_column=None, label_map={"I": "FRI", "II": "FRII"},
                         select={"u_mt": ["c"]}, test_fraction=0.5, split_seed=7)
    sources = read_catalogue(path, spec)
    assert "C" not in set(sources["name"])  # unconfirmed row dropped by the selection
    assert sources.set_index("name").loc["B", "class_name"] == "FRII"
    # 4 FRI and 3 FRII: half of each (rounded) goes to test
    assert sources.groupby("class_name")["split"].apply(lambda s: (s == "test").sum()).to_dict() == {"FRI": 2, "FRII": 2}
    again = read_catalogue(path, spec)
    assert list(again["split"]) == list(sources["split"])


def test_stratified_split_keeps_class_fractions_and_depends_on_seed():
    labels = np.array([0] * 100 + [1] * 50)
    split = stratified_split(labels, 0.3, seed=1)
    assert (split[labels == 0] == "test").sum() == 30
    assert (split[labels == 1] == "test").sum() == 15
    assert list(split) == list(stratified_split(labels, 0.3, seed=1))
    assert list(split) != list(stratified_split(labels, 0.3, seed=2))


# ------------------------------------------------- several catalogues, merged by position

SHARED_CATALOGUES = REPO.parent / "shared" / "catalogues"
ARCSEC = 1 / 3600
NO_NEIGHBOUR_CHECK = {"same_source_arcsec": 0.0, "max_field_overlap": None, "action": "keep"}


def _entry(tmp_path, name, rows, **options):
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(["name,ra,dec,fr_class,split", *rows]) + "\n")
    return {"name": name, "path": str(path), "columns": {"split": "split"}, **options}


def _two_catalogues(tmp_path, b_rows, **section):
    a = _entry(tmp_path, "a", ["A1,10.0,1.0,FRI,train", "A2,20.0,2.0,FRII,test", "A3,30.0,3.0,FRI,train",
                               "A4,40.0,4.0,FRII,train"])
    b = _entry(tmp_path, "b", b_rows)
    return {"sources": [a, b], "match_radius_arcsec": 30.0, "neighbours": NO_NEIGHBOUR_CHECK, **section}


def test_same_class_duplicates_merge_into_one_source_and_test_wins(tmp_path):
    # B1 is A1 10" away (same class, test in b); B2 is A2 20" away; B3 is 60" from A3: another source
    section = _two_catalogues(tmp_path, [f"B1,{10 + 10 * ARCSEC},1.0,FRI,test", f"B2,20.0,{2 + 20 * ARCSEC},FRII,train",
                                         f"B3,30.0,{3 + 60 * ARCSEC},FRI,test"])
    sources, report, _ = build_sources(section, CLASS_NAMES, {})
    assert sorted(sources["name"]) == ["A1", "A2", "A3", "A4", "B3"]
    assert report["rows_per_catalogue"] == {"a": 4, "b": 3}
    assert report["duplicates_merged"] == 2 and report["conflicts_left_out"] == 0
    assert report["groups_by_catalogues"] == {"a+b": 2}
    assert report["kept_with_split_changed"] == 2
    by_name = sources.set_index("name")
    assert by_name.loc["A1", "split"] == "test" and by_name.loc["A2", "split"] == "test"  # test wins
    assert by_name.loc["B3", "catalogue"] == "b" and by_name.loc["A1", "catalogue"] == "a"
    assert list(sources.columns[:7]) == ["name", "ra_deg", "dec_deg", "class_name", "label", "split", "catalogue"]


def test_conflicting_classes_are_reported_and_left_out_unless_preferred(tmp_path):
    rows = [f"B1,{10 + 5 * ARCSEC},1.0,FRII,train", "B2,50.0,5.0,FRII,test"]  # B1 is A1 (FRI) called FRII
    sources, report, _ = build_sources(_two_catalogues(tmp_path, rows), CLASS_NAMES, {})
    assert "A1" not in set(sources["name"]) and "B1" not in set(sources["name"]) and len(sources) == 4
    assert report["conflicts_left_out"] == 1 and report["duplicates_merged"] == 0
    conflict = report["groups"][0]
    assert conflict["members"] == ["a:A1 (FRI, train)", "b:B1 (FRII, train)"] and conflict["outcome"] == "left out"
    assert conflict["max_separation_arcsec"] == pytest.approx(5.0, abs=0.01)

    sources, report, _ = build_sources(_two_catalogues(tmp_path, rows, prefer="b"), CLASS_NAMES, {})
    assert report["conflicts_resolved_by_prefer"] == 1 and report["conflicts_left_out"] == 0
    assert sources.set_index("name").loc["B1", "class_name"] == "FRII" and "A1" not in set(sources["name"])


def test_unknown_preferred_catalogue_is_named(tmp_path):
    with pytest.raises(CatalogueError, match=r"catalogue.prefer: \['c'\]"):
        build_sources(_two_catalogues(tmp_path, ["B1,50.0,5.0,FRI,test"], prefer=["c"]), CLASS_NAMES, {})


def test_three_classes_and_a_label_from_another_column(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("name,ra,dec,fr_class,morphology,split\nX1,10,1,FRI,standard,train\nX2,20,2,FRII,standard,test\n"
                    "X3,30,3,FRI,head-tail,train\nX4,40,4,FRI,wide-angle-tail,test\nX5,50,5,FRI,standard,test\n")
    common = {"path": str(path), "columns": {"split": "split"}}
    section = {"neighbours": NO_NEIGHBOUR_CHECK, "sources": [
        {"name": "fr", **common, "select": {"morphology": ["standard"]}},
        {"name": "bent", **common, "columns": {"label": "morphology", "split": "split"},
         "select": {"morphology": ["head-tail", "wide-angle-tail"]},
         "label_map": {"head-tail": "Bent", "wide-angle-tail": "Bent"}, "carry": ["morphology"]}]}
    sources, _, _ = build_sources(section, ["FRI", "FRII", "Bent"], {})
    assert dict(zip(sources["name"], sources["label"])) == {"X1": 0, "X2": 1, "X5": 0, "X3": 2, "X4": 2}
    assert sources.set_index("name").loc["X4", "morphology"] == "wide-angle-tail"


def test_extra_split_stays_out_of_train_and_test(tmp_path):
    section = _two_catalogues(tmp_path, ["B1,50.0,5.0,FRI,train", "B2,60.0,6.0,FRII,test"])
    section["sources"][1]["assign_split"] = "uncertain"
    sources, _, _ = build_sources(section, CLASS_NAMES, {})
    assert sources.groupby("split").size().to_dict() == {"test": 1, "train": 3, "uncertain": 2}


# ------------------------------------------------- train/test neighbours


def _planted(splits, offsets_arcsec):
    """Sources at (150 deg, +20 deg) shifted east by each offset."""
    centre = SkyCoord(150 * u.deg, 20 * u.deg)
    coords = [centre.spherical_offsets_by(offset * u.arcsec, 0 * u.arcsec) for offset in offsets_arcsec]
    return pd.DataFrame({"name": [f"S{i}" for i in range(len(splits))], "ra_deg": [c.ra.deg for c in coords],
                         "dec_deg": [c.dec.deg for c in coords], "class_name": "FRI", "label": 0, "split": splits})


def test_neighbour_search_finds_a_planted_pair_and_not_a_distant_one():
    # S0 (train) and S1 (test) 10" apart; S2 (test) 1000" from S0; S3 (train) 1020" from S0, 20" from S2,
    # same split: not a cross-split pair
    sources = _planted(["train", "test", "test", "test"], [0, 10, 1000, 1020])
    kept, report = resolve_neighbours(sources, NeighbourSettings(30.0, None, "drop_test"), {})
    assert list(zip(report["train_name"], report["test_name"])) == [("S0", "S1")]
    assert report["separation_arcsec"].iloc[0] == pytest.approx(10.0, abs=1e-3)
    assert list(kept["name"]) == ["S0", "S2", "S3"]
    moved, report = resolve_neighbours(sources, NeighbourSettings(30.0, None, "move_to_train"), {})
    assert list(moved["split"]) == ["train", "train", "test", "test"] and report["action"].iloc[0] == "moved S1 to train"
    moved, _ = resolve_neighbours(sources, NeighbourSettings(30.0, None, "move_to_test"), {})
    assert list(moved["split"]) == ["test", "test", "test", "test"]
    kept, report = resolve_neighbours(sources, NeighbourSettings(30.0, None, "keep"), {})
    assert len(kept) == 4 and list(report["action"]) == ["kept"]


def test_field_overlap_matches_a_hand_computation():
    centre = SkyCoord(150 * u.deg, 20 * u.deg)
    # 60" east and 30" north on a FIRST cutout of 150 x 1.8" = 270": (1 - 60/270) (1 - 30/270)
    shifted = centre.spherical_offsets_by(60 * u.arcsec, 30 * u.arcsec)
    assert float(field_overlap(centre, shifted, 270.0)) == pytest.approx((1 - 60 / 270) * (1 - 30 / 270), abs=1e-4)
    assert float(field_overlap(centre, centre.spherical_offsets_by(300 * u.arcsec, 0 * u.arcsec), 270.0)) == 0.0
    fields = survey_fields({"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)", "pixels": 150},
                            "NVSS": {"skyview_name": "NVSS", "pixels": 150}})
    assert fields == {"FIRST": 270.0, "NVSS": 2250.0}
    # 200" apart: FIRST shares 1 - 200/270 = 0.26 (not > 0.5), NVSS 1 - 200/2250 = 0.91: a pair through NVSS only
    sources = _planted(["train", "test"], [0, 200])
    _, report = resolve_neighbours(sources, NeighbourSettings(30.0, 0.5, "keep"), fields)
    assert report["overlap_FIRST"].iloc[0] == pytest.approx(1 - 200 / 270, abs=1e-4)
    assert report["overlap_NVSS"].iloc[0] == pytest.approx(1 - 200 / 2250, abs=1e-4)
    assert not report["same_source"].iloc[0]


def test_unknown_pixel_scale_is_named():
    with pytest.raises(CatalogueError, match=r"surveys.VLSS.pixel_scale_arcsec"):
        survey_fields({"VLSS": {"skyview_name": "VLSSr", "pixels": 150}})
    assert survey_fields({"VLSS": {"skyview_name": "VLSSr", "pixels": 100, "pixel_scale_arcsec": 20}}) == {"VLSS": 2000.0}
    assert survey_fields({"VLSS": {"skyview_name": "VLSSr"}}, {"max_field_overlap": None}) == {}


def test_real_frdeep_cross_split_pairs_with_default_settings(tmp_path):
    fields = survey_fields({"FIRST": {"skyview_name": "VLA FIRST (1.4 GHz)", "pixels": 150},
                            "NVSS": {"skyview_name": "NVSS", "pixels": 150}})
    section = {"path": str(FULL_CATALOGUE), "columns": {"split": "split"}}
    paths = [tmp_path / name for name in ("sources.csv", "merge.json", "neighbours.csv")]
    sources = write_catalogue_stage(section, CLASS_NAMES, fields, *paths)
    pairs = pd.read_csv(paths[2])
    same = pairs[pairs["same_source"]]
    assert sorted(zip(same["train_name"], same["test_name"])) == [
        ("NGC 5782", "SDSS J145555.27+115141.4"), ("SDSS J142616.34+005015.3", "N344Z014")]
    assert same["separation_arcsec"].round(1).tolist() == [3.6, 14.0]
    # two more share over half a FIRST field, eight more over half an NVSS field only
    assert len(pairs) == 12 and (pairs["overlap_FIRST"] > 0.5).sum() == 4
    assert len(sources) == 658 - 12 and set(pairs["test_name"]).isdisjoint(sources["name"])
    report = json.loads(paths[1].read_text())
    assert report["neighbours"] == {"action": "drop_test", "cross_split_pairs": 12, "sources_dropped": 12,
                                    "sources_moved": 0}
    assert len(pd.read_csv(paths[0])) == 646


@pytest.mark.skipif(not (SHARED_CATALOGUES / "mirabest.csv").is_file(), reason="needs ../shared/catalogues/mirabest.csv")
def test_frdeep_and_mirabest_share_74_sources_within_30_arcsec():
    section = {"neighbours": NO_NEIGHBOUR_CHECK, "match_radius_arcsec": 30.0, "sources": [
        {"name": "frdeep", "path": str(FULL_CATALOGUE), "columns": {"split": "split"}},
        {"name": "mirabest", "path": str(SHARED_CATALOGUES / "mirabest.csv"), "columns": {"split": "split"},
         "label_map": {"FRI": "FRI", "FRII": "FRII", "hybrid": "FRII"}}]}  # hybrids only to count them
    _, report, _ = build_sources(section, CLASS_NAMES, {})
    # 74 FRDEEP sources within 30" of 73 MiraBest ones (MB0377 is both SDSS J142616.34+005015.3 and N344Z014)
    members = [member for group in report["groups"] for member in group["members"]]
    assert sum(member.startswith("frdeep:") for member in members) == 74
    assert sum(member.startswith("mirabest:") for member in members) == 73
    assert report["groups_by_catalogues"] == {"frdeep+mirabest": 73}


def test_catalogue_paths_lists_each_file_once(tmp_path):
    assert catalogue_paths({"path": "x.csv"}) == ["x.csv"]
    assert catalogue_paths({"sources": [{"name": "a", "path": "m.csv"}, {"name": "b", "path": "m.csv"},
                                        {"name": "c", "path": "f.csv"}]}) == ["m.csv", "f.csv"]


# ------------------------------------------------- the study configs


@pytest.mark.skipif(not (REPO.parent / "shared" / "mirabest" / "skyview-mirror" / "index.csv").is_file(),
                    reason="needs ../shared/mirabest/skyview-mirror and ../shared/catalogues/mirabest.csv")
def test_mirabest_config_plans_first_jobs_only():
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/mirabest.yaml"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = result.stdout + result.stderr
    assert "FIRST" in plan and "NVSS" not in plan and "train_transfer" not in plan
    assert "results/mirabest/catalogue/sources.csv" in plan


@pytest.mark.parametrize("written", ["valid", "val", "Validation"])
def test_a_datasets_own_validation_split_is_read_as_validation(tmp_path, written):
    path = _write(tmp_path, [*GOOD_ROWS, f"E,50.0,5.0,FRI,{written}", f"F,60.0,6.0,FRII,{written}"])
    sources = read_catalogue(path, CatalogueSpec(class_names=CLASS_NAMES))
    assert list(sources.set_index("name").loc[["E", "F"], "split"]) == ["validation", "validation"]


def test_neighbour_check_covers_validation_pairs_and_drops_the_member_nearer_test():
    # S0 train / S1 validation 10" apart; S2 validation / S3 test 10" apart; S4 alone
    sources = _planted(["train", "validation", "validation", "test", "test"], [0, 10, 2000, 2010, 5000])
    kept, report = resolve_neighbours(sources, NeighbourSettings(30.0, None, "drop_test"), {})
    assert list(zip(report["train_name"], report["test_name"], report["splits"])) == [
        ("S0", "S1", "train/validation"), ("S2", "S3", "validation/test")]
    assert list(kept["name"]) == ["S0", "S2", "S4"]
    assert list(report["action"]) == ["dropped S1 (validation)", "dropped S3 (test)"]
