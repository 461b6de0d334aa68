"""A damaged input is named with the rule that remakes it, and set aside so that the next run remakes it."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import CLASS_NAMES, write_synthetic_dataset
from rgmorph.checkpoint import load_checkpoint
from rgmorph.comparisons import seed_ensemble
from rgmorph.dataset import load_dataset
from rgmorph.evaluate import read_predictions
from rgmorph.fetch import MANIFEST_COLUMNS, read_manifest
from rgmorph.figures.confident_errors import confident_errors
from rgmorph.files import DamagedFileError, write_csv_atomic
from rgmorph.train import train_seeds
from rgmorph.train_settings import TrainSettings


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_dataset_is_named_and_set_aside_for_preprocess(tmp_path):
    dataset = write_synthetic_dataset(tmp_path / "FIRST.npz", per_class=4, size=32)
    _truncate(dataset)
    with pytest.raises(DamagedFileError, match=r"FIRST.npz is damaged .* 'preprocess' rule remakes it"):
        load_dataset(dataset)
    assert not dataset.exists() and (tmp_path / "FIRST.npz.damaged").is_file()


def test_a_corrupt_checkpoint_is_named_and_set_aside_for_train(tmp_path):
    dataset = write_synthetic_dataset(tmp_path / "d.npz", per_class=8, size=32)
    checkpoint = tmp_path / "seed0" / "checkpoint.pt"
    settings = TrainSettings(epochs=1, batch_size=8, threads=1, device="cpu")
    train_seeds(dataset, "lenet", [0], settings, [checkpoint], [tmp_path / "seed0" / "history.csv"])
    load_checkpoint(checkpoint)  # readable as written
    _truncate(checkpoint)
    with pytest.raises(DamagedFileError, match=r"checkpoint.pt is damaged .* 'train' rule remakes it"):
        load_checkpoint(checkpoint)
    assert not checkpoint.exists() and (checkpoint.parent / "checkpoint.pt.damaged").is_file()


@pytest.mark.parametrize(("folder", "rule"), [("NVSS/tang2019/seed0", "train"),
                                             ("FIRST/tang2019/transfer-from-NVSS/seed0", "train_transfer"),
                                             ("FIRST/tang2019/transfer-from-NVSS-finetune/seed0", "train_transfer_mode")])
def test_a_damaged_checkpoint_names_the_rule_that_wrote_it(tmp_path, folder, rule):
    checkpoint = tmp_path / "models" / folder / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DamagedFileError, match=rf"'{rule}' rule remakes it"):
        load_checkpoint(checkpoint)


def test_a_missing_file_is_not_called_damaged(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.npz")


# --------------------------------------------------------------- CSV files a rule wrote

def _manifest(folder):
    """A survey's manifest as the fetch rule writes it: one good source, one failed (no file)."""
    path = folder / "cutouts" / "FIRST" / "manifest.csv"
    path.parent.mkdir(parents=True)
    rows = [{"name": "3C 31", "survey": "FIRST", "ra_deg": 16.85, "dec_deg": 32.41, "file": "a.fits",
             "sha256": "0" * 64, "status": "ok", "attempts": 1, "detail": ""},
            {"name": "NA", "survey": "FIRST", "ra_deg": 17.0, "dec_deg": 32.0, "file": "", "sha256": "",
             "status": "failed", "attempts": 3, "detail": "HTTP 503"}]
    write_csv_atomic(path, pd.DataFrame(rows, columns=MANIFEST_COLUMNS))
    return path


def _predictions(folder):
    path = folder / "evaluation" / "FIRST" / "tang2019" / "seed0" / "predictions.csv"
    path.parent.mkdir(parents=True)
    write_csv_atomic(path, pd.DataFrame({"name": ["A", "B", "C"], "label": [0, 1, 1],
                                         "class_name": ["FRI", "FRII", "FRII"],
                                         "probability_FRI": [0.9, 0.2, 0.7], "probability_FRII": [0.1, 0.8, 0.3],
                                         "predicted": [0, 1, 0]}))
    return path


def _cut_mid_line(path):
    data = path.read_bytes()
    path.write_bytes(data[: data.rindex(b",") + 1])


def _assert_set_aside(path):
    assert not path.exists() and path.with_name(path.name + ".damaged").is_file()


def test_a_manifest_as_written_reads_with_its_names_kept(tmp_path):
    manifest = read_manifest(_manifest(tmp_path))
    assert manifest["name"].tolist() == ["3C 31", "NA"] and manifest["status"].tolist() == ["ok", "failed"]


def test_a_truncated_manifest_is_named_and_set_aside_for_fetch(tmp_path):
    path = _manifest(tmp_path)
    _cut_mid_line(path)
    with pytest.raises(DamagedFileError, match=r"manifest.csv is damaged \(it is cut short: its last line does not "
                                               r"end\); it was moved to manifest.csv.damaged: rerun and the 'fetch' "
                                               r"rule remakes it"):
        read_manifest(path)
    _assert_set_aside(path)


@pytest.mark.parametrize("damage, reason", [
    (lambda frame: frame.drop(columns="status"), r"it lacks column\(s\) \['status'\]"),
    (lambda frame: frame.assign(status=["ok", ""]), r"column 'status' is empty in row 2"),
])
def test_a_manifest_without_a_column_or_with_an_empty_status_is_damaged(tmp_path, damage, reason):
    path = _manifest(tmp_path)
    write_csv_atomic(path, damage(pd.read_csv(path, dtype=str, keep_default_na=False)))
    with pytest.raises(DamagedFileError, match=rf"manifest.csv is damaged \({reason}.*'fetch' rule remakes it"):
        read_manifest(path)
    _assert_set_aside(path)


def test_truncated_predictions_are_named_and_set_aside_for_evaluate(tmp_path):
    path = _predictions(tmp_path)
    assert confident_errors([path], CLASS_NAMES)["name"].tolist() == ["C"]  # readable as written
    _cut_mid_line(path)
    with pytest.raises(DamagedFileError,
                       match=r"predictions.csv is damaged \(it is cut short.*'evaluate' rule remakes it"):
        confident_errors([path], CLASS_NAMES)  # the figure of the most confident errors reads it
    _assert_set_aside(path)


def test_predictions_with_an_empty_probability_are_damaged(tmp_path):
    path = _predictions(tmp_path)
    text = path.read_text().splitlines()
    text[2] = text[2].replace("0.8", "")
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(DamagedFileError, match=r"column 'probability_FRII' is empty in row 2.*'evaluate' rule"):
        seed_ensemble([path])  # the paired comparisons read it
    _assert_set_aside(path)


def test_a_transfer_runs_extra_split_predictions_name_their_own_rule(tmp_path):
    path = tmp_path / "evaluation" / "NVSS" / "tang2019" / "transfer-from-FIRST" / "seed1" / "predictions_uncertain.csv"
    path.parent.mkdir(parents=True)
    path.write_text("name,label,class_name,probability_FRI,probability_FRII,predicted\nA,0,FRI,0.9,0.1,0")
    with pytest.raises(DamagedFileError, match=r"'evaluate_transfer_extra_split' rule remakes it"):
        read_predictions(path, CLASS_NAMES)
