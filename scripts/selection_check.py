"""Does the cheaper model selection pick epochs as good as the old one? A measurement on validation only.

One training job (the same seeds trained together, as the pipeline trains them) is scored two ways after
every epoch, on the same weights:

* ``old``: batch-norm statistics over every fit image, validation with one view and with the 8 D4 views
  every epoch; per seed the best epoch of each view, then the view whose best is better;
* ``new`` (today's ``train.batch_norm_images`` and 'auto'): statistics over the configured subset,
  validation with one view every epoch; the selected state is then scored with D4 once.

Neither scoring draws random numbers or changes the training steps (train-mode batch norm uses batch
statistics), so both select from one trajectory. Per seed it prints the chosen epoch, view and
validation loss of each protocol, and the old protocol's loss at the new choice (like for like).

    python scripts/selection_check.py --dataset results/datasets/FIRST.npz --model tang2019 --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from rgmorph import settings as study  # noqa: E402
from rgmorph.train import NetworkTraining, TrainSettings, _better, make_deterministic  # noqa: E402


def old_scores(training: NetworkTraining) -> dict:
    """{view: (losses, accuracies)} of the current weights, the old way (statistics over all fit images).
    A constant frozen trunk's statistics and features stay as the new protocol keeps them."""
    trainer = training.trainer
    kept = trainer.trunk_statistics, trainer.validation_features
    trainer.recompute_batch_norm(images=0)
    scores = {view: trainer.validate(view) for view in ("none", "d4")}
    trainer.trunk_statistics, trainer.validation_features = kept
    return scores


def old_choice(rows: list[dict], metric: str) -> dict:
    """The old protocol's pick for one seed: the best epoch per view, then the better view."""
    best = {}
    for view in ("none", "d4"):
        for row in rows:
            score = {"epoch": row["epoch"], "val_loss": row[f"old_loss_{view}"], "val_accuracy": row[f"old_accuracy_{view}"]}
            if _better(score, best.get(view), metric):
                best[view] = score
    view = "d4" if _better(best["d4"], best["none"], metric) else "none"
    return {"view": view, **best[view]}


def run(dataset: Path, model: str, seeds: list[int], settings: TrainSettings) -> tuple[pd.DataFrame, dict]:
    torch.set_num_threads(settings.threads)
    make_deterministic(seeds[0], settings.deterministic)
    with tempfile.TemporaryDirectory() as folder:
        training = NetworkTraining(dataset, model, seeds, settings, None, Path(folder) / "last.pt")
    rows: list[list[dict]] = [[] for _ in seeds]
    old_seconds = 0.0
    training.started = time.monotonic()
    for epoch in range(1, settings.epochs + 1):
        training.epoch(epoch)  # the new protocol, as the pipeline runs it
        start = time.monotonic()
        scores = old_scores(training)
        old_seconds += time.monotonic() - start
        for k in range(len(seeds)):
            rows[k].append({"epoch": epoch, **{f"old_{name}_{view}": float(scores[view][i][k])
                                              for view in scores for i, name in enumerate(("loss", "accuracy"))}})
        print(f"epoch {epoch}/{settings.epochs} done", flush=True)
    training.score_other_views()
    table = []
    for k, seed in enumerate(seeds):
        old = old_choice(rows[k], settings.selection_metric)
        view = training.chosen_tta(k)
        new = training.best[view][k]
        at_new = next(row for row in rows[k] if row["epoch"] == new["epoch"])
        table.append({"seed": seed, "old_epoch": old["epoch"], "old_view": old["view"], "old_val_loss": old["val_loss"],
                      "old_val_accuracy": old["val_accuracy"], "new_epoch": new["epoch"], "new_view": view,
                      "new_val_loss": new["val_loss"], "new_val_accuracy": new["val_accuracy"],
                      "old_val_loss_at_new_choice": at_new[f"old_loss_{view}"],
                      "old_val_accuracy_at_new_choice": at_new[f"old_accuracy_{view}"]})
    phases = {**training.phase_seconds, "old_protocol_scoring": old_seconds}
    return pd.DataFrame(table), phases


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--model", default="tang2019")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--epochs", type=int, default=None, help="default: the published study's")
    parser.add_argument("--threads", type=int, default=None, help="default: the published study's")
    parser.add_argument("--batch-norm-images", type=int, default=None,
                        help="the new protocol's statistics subset (default: the published study's)")
    parser.add_argument("--out", type=Path, default=None, help="write the table here (CSV)")
    arguments = parser.parse_args(argv)
    config = study.load([REPO / "config" / "config.yaml", REPO / "config" / "published.yaml"])
    values = {**study.model_settings(config, arguments.model), "threads": config["train"]["threads"], "device": "cpu"}
    values.update({key: value for key, value in (("epochs", arguments.epochs), ("threads", arguments.threads),
                                                               ("batch_norm_images", arguments.batch_norm_images))
                   if value is not None})
    settings = TrainSettings.from_mapping(values)
    table, phases = run(arguments.dataset, arguments.model, [int(s) for s in arguments.seeds.split(",")], settings)
    print(f"{arguments.model}, {arguments.dataset}, {settings.epochs} epochs, batch_norm_images "
          f"{settings.batch_norm_images}, threads {settings.threads}")
    print(table.to_string(index=False, float_format=lambda value: f"{value:.4f}"))
    print("seconds: " + ", ".join(f"{key} {value:.1f}" for key, value in phases.items()))
    if arguments.out:
        table.to_csv(arguments.out, index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
