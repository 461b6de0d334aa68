import numpy as np
import pandas as pd
import pytest

from rgmorph.catalogue import CatalogueError, CatalogueSpec, parse_angle, read_catalogue, stratified_split
from conftest import CLASS_NAMES, FULL_CATALOGUE


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
    ("E,50.0,5.0,FRI,validation", "catalogue row 6 (E): split 'validation'"),
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
