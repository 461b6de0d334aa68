"""Fair transfer (transfer.modes): each mode freezes what it says, its runs have their own paths, the
transfer_modes table pairs seeds as a hand computation does, and the referee overlay plans the new jobs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from conftest import QUICKSTART_MIRROR, REPO, write_synthetic_dataset
from rgmorph import models, settings
from rgmorph.evaluate import evaluation_rule, summarise_runs
from rgmorph.layout import TRANSFER_MODES, Run, Variant
from rgmorph.train import TrainSettings, TransferSpec, train_seeds
from rgmorph.transfer_modes import transfer_modes_table, write_transfer_modes_table

SETTINGS = TrainSettings(epochs=2, batch_size=8, threads=1, device="cpu", model_options={"width": 8})
SEEDS = [0, 1]
CONFIG = {"transfer": {"freeze": {"default": ["features"]}, "reinitialise": {}}}


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """{mode: checkpoints} of resnet seeds pre-trained on SRC and fine-tuned on TGT in every mode."""
    folder = tmp_path_factory.mktemp("modes")
    source, target = (write_synthetic_dataset(folder / f"{survey}.npz", per_class=16, size=48, seed=seed, survey=survey)
                      for seed, survey in enumerate(("SRC", "TGT")))
    pretrained = [Run("SRC", "resnet", seed).file(folder, "checkpoint.pt") for seed in SEEDS]
    train_seeds(source, "resnet", SEEDS, SETTINGS, pretrained, [p.replace("checkpoint.pt", "history.csv")
                                                                for p in pretrained])
    checkpoints = {}
    for mode in TRANSFER_MODES:
        frozen, reinitialise = settings.mode_layers(CONFIG, "resnet", mode)
        paths = [Run("TGT", "resnet", seed, "SRC", mode).file(folder, "checkpoint.pt") for seed in SEEDS]
        checkpoints[mode] = train_seeds(target, "resnet", SEEDS, SETTINGS, paths,
                                        [p.replace("checkpoint.pt", "history.csv") for p in paths],
                                        transfer=TransferSpec("SRC", pretrained, frozen=frozen,
                                                              reinitialise=reinitialise))
    return pretrained, checkpoints


def _weights(state: dict, prefix: str = "") -> dict:
    """Learnt tensors only (batch-norm running statistics adapt to the new survey in every mode)."""
    return {key: value for key, value in state.items() if key.startswith(prefix)
            and "running_" not in key and "num_batches" not in key}


def _fresh_init(seed: int) -> dict:
    torch.manual_seed(seed)  # as training seeds a run's initial weights
    return models.build("resnet", in_channels=1, num_classes=2, image_size=48, width=8).state_dict()


def test_mode_layers_follow_the_freeze_setting():
    assert settings.mode_layers(CONFIG, "resnet", "frozen") == (["features"], [])
    assert settings.mode_layers(CONFIG, "resnet", "finetune") == ([], [])
    assert settings.mode_layers(CONFIG, "resnet", "random_frozen") == (["features"], ["features"])


def test_frozen_keeps_the_pretrained_convolutions(fine_tuned):
    pretrained, checkpoints = fine_tuned
    for path, checkpoint in zip(pretrained, checkpoints["frozen"]):
        before = torch.load(path, weights_only=True)["state_dict"]
        for key, value in _weights(before, "features.").items():
            assert torch.equal(checkpoint["state_dict"][key], value), key
        assert not torch.equal(checkpoint["state_dict"]["classifier.2.weight"], before["classifier.2.weight"])


def test_random_frozen_keeps_a_fresh_seeded_init_not_the_pretrained_weights(fine_tuned):
    pretrained, checkpoints = fine_tuned
    for seed, path, checkpoint in zip(SEEDS, pretrained, checkpoints["random_frozen"]):
        before, fresh = torch.load(path, weights_only=True)["state_dict"], _fresh_init(seed)
        frozen = _weights(checkpoint["state_dict"], "features.")
        assert all(torch.equal(value, fresh[key]) for key, value in frozen.items())
        assert not any(torch.equal(value, before[key]) for key, value in frozen.items() if value.dim() > 1)
        assert not torch.equal(checkpoint["state_dict"]["classifier.2.weight"], fresh["classifier.2.weight"])
        assert checkpoint["frozen"] == ["features"] and checkpoint["reinitialised"] == ["features"]


def test_finetune_changes_every_layer(fine_tuned):
    pretrained, checkpoints = fine_tuned
    for path, checkpoint in zip(pretrained, checkpoints["finetune"]):
        before = torch.load(path, weights_only=True)["state_dict"]
        unchanged = [key for key, value in _weights(checkpoint["state_dict"]).items() if torch.equal(value, before[key])]
        assert unchanged == []
        assert checkpoint["frozen"] == [] and checkpoint["trainable_parameters"] == checkpoint["parameters"]


@pytest.mark.parametrize("mode", TRANSFER_MODES)
def test_paths_parse_back_to_their_run(mode):
    run = Run("FIRST", "tang2019", 3, "NVSS", mode)
    for name in ("checkpoint.pt", "history.csv", "metrics.json", "predictions_uncertain.csv"):
        assert Run.from_path(run.file("results", name)) == run
    suffix = "" if mode == "frozen" else f"-{mode}"
    assert run.folder == f"FIRST/tang2019/transfer-from-NVSS{suffix}/seed3"
    assert Run("FIRST", "tang2019", 3, "NVSS") == Run("FIRST", "tang2019", 3, "NVSS", "frozen")
    assert evaluation_rule(run.file("r", "metrics.json")) == ("evaluate_transfer" if mode == "frozen"
                                                             else "evaluate_transfer_mode")


def test_labels_name_the_mode_and_leave_frozen_as_before():
    assert Variant("tang2019", "FIRST", "NVSS").label == "tang2019, FIRST (transfer from NVSS)"
    assert "all layers fine-tuned" in Variant("tang2019", "FIRST", "NVSS", "finetune").label
    assert "random frozen layers" in Variant("tang2019", "FIRST", "NVSS", "random_frozen").label
    with pytest.raises(ValueError, match="scratch"):
        Run("FIRST", "tang2019", 0, "", "finetune")


def test_the_run_list_has_one_run_per_mode_and_seed():
    config = {"surveys": {"FIRST": {}, "NVSS": {}}, "train": {"models": ["tang2019"], "seeds": [0, 1]},
              "transfer": {"models": ["tang2019"], "directions": [{"from": "NVSS", "to": "FIRST"}],
                           "modes": ["frozen", "finetune", "random_frozen"]}}
    runs = settings.transfer_runs(config)
    assert sorted((run.mode, run.seed) for run in runs) == sorted((m, s) for m in TRANSFER_MODES for s in (0, 1))
    del config["transfer"]["modes"]  # default: frozen only, the runs (and paths) of before modes
    assert settings.transfer_runs(config) == [Run("FIRST", "tang2019", s, "NVSS") for s in (0, 1)]


# ------------------------------------------------------------------ the table, on a planted runs table

PLANTED = {  # (setting, seed) -> (accuracy, auroc) of tang2019, NVSS -> FIRST
    ("scratch", 0): (0.90, 0.95), ("scratch", 1): (0.88, 0.94), ("scratch", 2): (0.93, 0.97),
    ("frozen", 0): (0.85, 0.91), ("frozen", 1): (0.86, 0.93), ("frozen", 2): (0.84, 0.90),
    ("finetune", 0): (0.91, 0.96), ("finetune", 1): (0.90, 0.94), ("finetune", 2): (0.92, 0.98),
    ("random_frozen", 0): (0.70, 0.80), ("random_frozen", 1): (0.74, 0.79), ("random_frozen", 2): (0.69, 0.83),
}


def _planted_runs() -> pd.DataFrame:
    rows = []
    for (setting, seed), (accuracy, auroc) in PLANTED.items():
        transfer = setting != "scratch"
        rows.append({"model": "tang2019", "kind": "transfer" if transfer else "scratch",
                     "pretrained_on": "NVSS" if transfer else "", "mode": setting if transfer else "",
                     "trained_on": "NVSS" if transfer else "FIRST", "survey": "FIRST", "seed": seed,
                     "accuracy": accuracy, "auroc": auroc})
    # a scratch model tested elsewhere and the other survey's scratch runs must not pair
    rows.append({**rows[0], "survey": "NVSS", "trained_on": "NVSS", "accuracy": 0.1})
    rows.append({**rows[0], "trained_on": "NVSS", "accuracy": 0.2})
    return pd.DataFrame(rows)


def _by_hand(setting: str, reference: str, metric: str) -> tuple[float, float, float, float]:
    index = 0 if metric == "accuracy" else 1
    d = np.array([PLANTED[(setting, s)][index] - PLANTED[(reference, s)][index] for s in (0, 1, 2)])
    half = stats.t.ppf(0.975, df=2) * d.std(ddof=1) / np.sqrt(3)
    p = 2 * stats.t.sf(abs(d.mean() / (d.std(ddof=1) / np.sqrt(3))), df=2)
    return d.mean(), d.mean() - half, d.mean() + half, p


def test_paired_differences_match_a_hand_computation(tmp_path):
    _planted_runs().to_csv(tmp_path / "runs.csv", index=False)
    table = write_transfer_modes_table(tmp_path / "runs.csv", tmp_path / "transfer_modes.csv")
    assert list(table["setting"]) == ["scratch", "frozen", "finetune", "random_frozen"]
    assert set(table["seeds"]) == {3} and set(zip(table["source"], table["target"])) == {("NVSS", "FIRST")}
    rows = table.set_index("setting")
    assert rows.loc["finetune", "accuracy_mean"] == pytest.approx(0.91)
    assert rows.loc["frozen", "accuracy_std"] == pytest.approx(0.01)
    for setting in ("frozen", "finetune", "random_frozen"):
        for reference in ("scratch", "frozen"):
            if setting == reference:
                assert rows.loc[setting, f"pairs_vs_{reference}"] == 0
                continue
            assert rows.loc[setting, f"pairs_vs_{reference}"] == 3
            for metric in ("accuracy", "auroc"):
                found = rows.loc[setting, [f"{metric}_vs_{reference}_{p}" for p in ("diff", "ci_low", "ci_high", "p")]]
                assert found.to_numpy(float) == pytest.approx(_by_hand(setting, reference, metric), abs=1e-9)
    assert np.isnan(rows.loc["scratch", "accuracy_vs_scratch_diff"])
    written = pd.read_csv(tmp_path / "transfer_modes.csv")
    assert written["accuracy_vs_scratch_diff"].round(4).tolist()[1:] == pytest.approx([-0.0533, 0.0067, -0.1933])


def test_a_runs_table_from_before_modes_reads_as_frozen():
    runs = _planted_runs()
    runs = runs[runs["mode"].isin(["", "frozen"])].drop(columns="mode")
    runs["setting"] = np.where(runs["kind"] == "transfer", "frozen", "scratch")
    table = transfer_modes_table(runs)
    assert list(table["setting"]) == ["scratch", "frozen"]


def test_summaries_keep_the_modes_apart(tmp_path):
    import tiny_results

    tree = tiny_results.shared()
    metrics = list(tree["metrics"])
    for mode in ("frozen", "finetune"):
        for k, source in enumerate(tree["metrics"][:2]):  # FIRST seeds relabelled as transfer runs
            report = json.loads(source.read_text())
            report["run"].update(pretrained_on="NVSS", kind="transfer", mode=mode)
            path = Run("FIRST", "tang2019", k, "NVSS", mode).file(tmp_path, "metrics.json")
            Path(path).parent.mkdir(parents=True)
            Path(path).write_text(json.dumps(report))
            metrics.append(path)
    predictions = [str(path).replace("metrics.json", "predictions.csv") for path in metrics]
    for path, source in zip(predictions[len(tree["metrics"]):], 2 * tree["predictions"][:2]):
        shutil.copyfile(source, path)
    summary = summarise_runs(metrics, tmp_path / "runs.csv", tmp_path / "summary.csv", predictions, n_resamples=20)
    transfer = summary[summary["kind"] == "transfer"]
    assert sorted(transfer["mode"]) == ["finetune", "frozen"] and set(transfer["seeds"]) == {2}
    # without another mode the tables keep the columns of before modes
    summary = summarise_runs(metrics[:6], tmp_path / "runs1.csv", tmp_path / "summary1.csv", predictions[:6],
                             n_resamples=20)
    assert "mode" not in summary.columns and "mode" not in pd.read_csv(tmp_path / "runs1.csv").columns


# ------------------------------------------------------------------ the workflow's plan


def _plan(results, *configs):
    """Job counts per rule of a dry run (config/config.yaml reads the bundled mirror, as in test_workflow)."""
    environment = {**os.environ, "RGMORPH_SKYVIEW_MIRROR": str(QUICKSTART_MIRROR)}
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", *configs,
                             "--config", f"results_dir={results}"], cwd=REPO, capture_output=True, text=True,
                            env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(line.split()[:2] for line in result.stdout.splitlines()
                if line[:1].isalpha() and line.split()[-1].isdigit())


def test_the_referee_overlay_plans_the_new_transfer_jobs(tmp_path):
    published = ["config/config.yaml", "config/published.yaml"]
    seeds = 5
    counts = _plan(tmp_path, *published, "config/referee_transfer.yaml")
    assert counts["train_transfer"] == "2" and counts["evaluate_transfer"] == str(2 * seeds)  # frozen, as before
    assert counts["train_transfer_mode"] == "4" and counts["evaluate_transfer_mode"] == str(4 * seeds)
    assert counts["transfer_modes"] == "1" and counts["figure_transfer_modes"] == "1"
    plain = _plan(tmp_path, *published)
    assert not {"train_transfer_mode", "transfer_modes", "figure_transfer_modes"} & set(plain)
