"""Checkpoints hold tensors and plain data only: they load without running code from the file, a crafted
one is refused (and its code never runs), and the same training gives the same bytes."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest
import torch

from rgmorph.checkpoint import UnsafeCheckpointError, load_checkpoint, run_info_path
from rgmorph.files import sha256_file
from rgmorph.train import TrainSettings, train_seeds
from conftest import write_synthetic_dataset

SETTINGS = TrainSettings(epochs=2, batch_size=8, threads=1, device="cpu")


class _CreatesAFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("checkpoint") / "synthetic.npz", per_class=12, size=48)


def test_a_checkpoint_whose_pickle_would_run_code_is_refused_and_the_code_does_not_run(tmp_path):
    planted = tmp_path / "planted.txt"
    path = tmp_path / "checkpoint.pt"
    torch.save({"model_name": "lenet", "state_dict": {}, "payload": _CreatesAFile(planted)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoint\.pt.*retrain"):
        load_checkpoint(path)
    assert not planted.exists()


def test_a_gabor_svm_checkpoint_holding_a_pickled_model_is_refused_and_the_code_does_not_run(tmp_path):
    planted = tmp_path / "planted.txt"
    path = tmp_path / "checkpoint.pt"
    torch.save({"model_name": "gabor_svm", "estimator_state": {"svc": _CreatesAFile(planted)}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoint\.pt is refused: .*could run code.*retrain it"):
        load_checkpoint(path)
    assert not planted.exists() and path.is_file()  # refused, not set aside as damaged


def test_an_old_format_gabor_svm_checkpoint_without_its_state_is_refused_saying_how_to_convert(tmp_path):
    planted = tmp_path / "planted.txt"
    path = tmp_path / "checkpoint.pt"
    # the old format: the joblib dump of the fitted model as bytes, which only unpickling would read
    torch.save({"model_name": "gabor_svm", "estimator": pickle.dumps(_CreatesAFile(planted))}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"checkpoint\.pt is a gabor_svm checkpoint of an older format "
                                                    r"\(a pickled model\); retrain it \(remove it and rerun the "
                                                    r"train rule\)"):
        load_checkpoint(path)
    assert not planted.exists()


@pytest.mark.parametrize("via_metrics", [False, True], ids=["directly", "via-metrics.json"])
def test_rgmorph_trace_of_a_planted_checkpoint_does_not_run_its_code(tmp_path, via_metrics):
    planted = tmp_path / "planted.txt"
    checkpoint = tmp_path / "models" / "FIRST" / "lenet" / "seed0" / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"model_name": "lenet", "state_dict": {}, "payload": _CreatesAFile(planted)}, checkpoint)
    target = checkpoint
    if via_metrics:
        target = tmp_path / "evaluation" / "FIRST" / "lenet" / "seed0" / "metrics.json"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps({"run": {"model": "lenet", "checkpoint": str(checkpoint),
                                              "checkpoint_sha256": sha256_file(checkpoint)}}))
    traced = subprocess.run([sys.executable, "-m", "rgmorph.cli", "trace", str(target)], capture_output=True,
                            text=True)
    printed = traced.stdout
    assert traced.returncode == 0, traced.stderr
    listed = f"model [checkpoint] {checkpoint}" if via_metrics else f"model {checkpoint}"
    assert listed in printed and f"sha256 {sha256_file(checkpoint)}" in printed, printed
    assert not planted.exists()


def test_two_identical_runs_write_byte_identical_checkpoints(dataset, tmp_path):
    for model, options in (("lenet", {}), ("gabor_svm", {"C_grid": [1.0], "gamma_grid": [1.0]})):
        settings = TrainSettings(**{**vars(SETTINGS), "model_options": options})
        paths = [tmp_path / run / model / "checkpoint.pt" for run in ("a", "b")]
        for path in paths:
            train_seeds(dataset, model, [0], settings, [path], [path.with_name("history.csv")])
        assert paths[0].read_bytes() == paths[1].read_bytes(), model
        # the wall-clock seconds and the host are in the sidecar
        assert "train_seconds" in load_checkpoint(paths[0])[1] and run_info_path(paths[0]).is_file()


def test_a_gabor_svm_checkpoint_loads_without_pickles(dataset, tmp_path):
    settings = TrainSettings(**{**vars(SETTINGS), "model_options": {"C_grid": [1.0], "gamma_grid": [1.0]}})
    checkpoint = train_seeds(dataset, "gabor_svm", [0], settings, [tmp_path / "c.pt"], [tmp_path / "h.csv"])[0]
    state = torch.load(tmp_path / "c.pt", weights_only=True)["estimator_state"]
    assert isinstance(state["svc"]["support_vectors_"], torch.Tensor)
    assert checkpoint["environment"]["device"] == "cpu"


def test_importing_the_models_imports_no_scikit_learn_scipy_or_joblib():
    code = ("import sys, rgmorph.models; "
            "print([m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy', 'joblib')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    from rgmorph import models

    assert "gabor_svm" in models.variants() and models.is_estimator("gabor_svm")
    assert "gabor_svm" not in models.available()
    assert callable(models.estimator_module("gabor_svm").build)
