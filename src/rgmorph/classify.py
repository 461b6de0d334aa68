"""Classify new, unlabelled sources with the trained models of a study, shard by shard.

An unlabelled catalogue (name, ra, dec; any other column is carried through) is validated once
(``read_unlabelled``), split into shards of ``classify.shard_size`` rows, and each shard goes through
the training pipeline's own fetch (``rgmorph.fetch.fetch_survey``) and preprocessing
(``rgmorph.preprocess.build_dataset``), then through every seed's checkpoint of one trained model
(loaded safely by ``rgmorph.checkpoint.load_checkpoint``, scored by ``rgmorph.train.predict_logits``).

Per source the table holds each class's probability (mean over seeds) and its std over seeds, the
predictive entropy of the mean probabilities (nats), and an out-of-distribution score: the energy
score of Liu et al. (2020), ``-logsumexp(logits)``, averaged over seeds (higher: less like the
training data). Its threshold is the ``classify.ood.percentile`` (95th) percentile of the same score
over the training study's validation sources (each checkpoint's ``validation_names``), so about 5%
of in-distribution sources are flagged. A checkpoint that chose the D4 test-time average gets its
probabilities from that average (as ``predict_logits`` of the loaded model gives them) and its
energy from the mean over the 8 views of the underlying network's energy (the average itself
returns log-probabilities, whose energy is always 0).

Sources whose cutout could not be fetched (``failed``) or is blank (outside the footprint) stay in
the table, with the fetch manifest's status and reason and empty probabilities.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rgmorph import layout
from rgmorph.catalogue import CatalogueError, _read_text, parse_angle
from rgmorph.fetch import MANIFEST_COLUMNS, USABLE_STATUSES, FetchError, report_path_for
from rgmorph.files import atomic_path, write_csv_atomic, write_json_atomic

log = logging.getLogger(__name__)

CLASSIFIED = "classified"
SOURCE_COLUMNS = ["name", "ra_deg", "dec_deg"]
UNLABELLED_SPLIT = "unlabelled"  # the split every source of a classify dataset is in


class ClassifyError(ValueError):
    """Inputs that cannot be classified as given; the message says which and why."""


# --- the catalogue and its shards -------------------------------------------------------------------------------


def catalogue_rows(path: str | Path) -> int:
    """How many sources the catalogue holds (read at parse time to know the shard count)."""
    return len(pd.read_csv(path, dtype=str, keep_default_na=False, usecols=[0]))


def shard_count(rows: int, shard_size: int) -> int:
    return max(1, math.ceil(rows / shard_size))


def read_unlabelled(path: str | Path, name: str = "name", ra: str = "ra", dec: str = "dec",
                    carry: list[str] | None = None) -> pd.DataFrame:
    """``name, ra_deg, dec_deg`` and the carried columns (None: every other column) of an unlabelled
    catalogue, in file order; CatalogueError listing every bad row (bad angle, empty or repeated name)."""
    import io

    path = Path(path)
    raw = pd.read_csv(io.StringIO(_read_text(path)), dtype=str, keep_default_na=False)
    missing = [column for column in (name, ra, dec) if column not in raw.columns]
    if missing:
        raise CatalogueError(f"catalogue {path} lacks column(s) {missing}; it has {list(raw.columns)} "
                             "(set classify.catalogue.columns)")
    if carry is None:
        carry = [column for column in raw.columns if column not in (name, ra, dec)]
    unknown = [column for column in carry if column not in raw.columns]
    if unknown:
        raise CatalogueError(f"catalogue {path} has no column(s) {unknown} to carry; it has {list(raw.columns)}")
    clashes = [column for column in carry if column in RESERVED_COLUMNS]
    if clashes:
        raise CatalogueError(f"catalogue {path}: carried column(s) {clashes} clash with output columns; "
                             "rename them or leave them out of classify.catalogue.carry")
    problems, ras, decs = [], [], []
    names = raw[name].str.strip()
    for index in range(len(raw)):
        where = f"line {index + 2} ({names.iat[index] or 'no name'})"
        if not names.iat[index]:
            problems.append(f"{where}: empty name")
        for column, kind, values in ((ra, "ra", ras), (dec, "dec", decs)):
            try:
                values.append(parse_angle(raw[column].iat[index], kind))
            except ValueError as exc:
                values.append(np.nan)
                problems.append(f"{where}: {column} {exc}")
    repeated = names[names.duplicated(keep=False) & (names != "")]
    for value in sorted(set(repeated)):
        lines = [str(i + 2) for i in np.flatnonzero(names.to_numpy() == value)]
        problems.append(f"name {value!r} appears on lines {', '.join(lines)}: names must be unique")
    if problems:
        listing = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CatalogueError(f"catalogue {path}: {len(problems)} problem(s):\n  {listing}")
    if raw.empty:
        raise CatalogueError(f"catalogue {path} holds no sources")
    table = pd.DataFrame({"name": names, "ra_deg": ras, "dec_deg": decs})
    for column in carry:
        table[column] = raw[column].to_numpy()
    return table


def write_shard_sources(catalogue: str | Path, shard: int, shard_size: int, output: str | Path) -> pd.DataFrame:
    """Rows ``shard * shard_size`` .. of the validated catalogue (as ``read_unlabelled`` wrote it), atomically."""
    start = shard * shard_size
    rows = pd.read_csv(catalogue, dtype=str, keep_default_na=False, skiprows=range(1, start + 1), nrows=shard_size)
    if rows.empty:
        raise ClassifyError(f"shard {shard} of {catalogue} is empty: the catalogue changed since the workflow "
                            "was planned; rerun snakemake")
    write_csv_atomic(output, rows)
    return rows


def fetch_shard(sources: pd.DataFrame, survey, manifest_path: str | Path, settings) -> pd.DataFrame:
    """``rgmorph.fetch.fetch_survey`` into the manifest's folder. With ``on_failure: exclude`` a shard
    in which no source has a usable cutout (all blank or failed for good) still gets its manifest, built
    from the fetch report, so that its sources are listed with their reasons; a service that is down
    (the consecutive-failure breaker) or any other stop still fails the job, to be rerun later."""
    from rgmorph.fetch import fetch_survey

    manifest_path = Path(manifest_path)
    try:
        return fetch_survey(sources=sources, survey=survey, out_dir=manifest_path.parent,
                            manifest_path=manifest_path, settings=settings)
    except FetchError:
        report_file = report_path_for(manifest_path)
        report = json.loads(report_file.read_text()) if report_file.is_file() else {}
        if not (settings.on_failure == "exclude" and report.get("outcome") == "stopped"
                and report.get("usable") == 0 and len(report.get("unusable", [])) == len(sources)):
            raise
    reasons = {entry["name"]: entry for entry in report["unusable"]}
    manifest = pd.DataFrame({
        "name": sources["name"], "survey": survey.key, "ra_deg": sources["ra_deg"], "dec_deg": sources["dec_deg"],
        "file": "", "sha256": "", "status": [reasons[n]["status"] for n in sources["name"]],
        "attempts": [reasons[n]["attempts"] for n in sources["name"]],
        "detail": [reasons[n]["detail"] for n in sources["name"]]}).reindex(columns=MANIFEST_COLUMNS)
    write_csv_atomic(manifest_path, manifest)
    log.warning("%s: no source of this shard has a usable cutout; all %d listed with their reasons",
                survey.key, len(sources))
    return manifest


def preprocess_shard(sources: pd.DataFrame, manifest: pd.DataFrame, cutout_dir: str | Path, output: str | Path,
                     survey: str, **preprocess) -> int:
    """``rgmorph.preprocess.build_dataset`` of the shard's usable cutouts (the training pipeline's own
    preprocessing; labels -1, split 'unlabelled'); a shard with none gets an empty dataset. Returns the count."""
    from rgmorph.preprocess import build_dataset

    unlabelled = sources[SOURCE_COLUMNS].assign(label=-1, split=UNLABELLED_SPLIT)
    if manifest["status"].isin(USABLE_STATUSES).any():
        return build_dataset(sources=unlabelled, manifest=manifest, cutout_dir=cutout_dir, output=output,
                             class_names=[], survey=survey, **preprocess)["sources"]
    with atomic_path(output) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, images=np.zeros((0, 0, 0), np.float32), labels=np.zeros(0, np.int64),
                            names=np.array([], dtype=str), split=np.array([], dtype=str),
                            sha256=np.array([], dtype=str), class_names=np.array([], dtype=str),
                            pixel_scale_arcsec=np.zeros(0), survey=np.array(survey))
    return 0


# --- scoring ----------------------------------------------------------------------------------------------------


def checkpoint_paths(results: str | Path, survey: str, model: str, seeds: list[int]) -> list[str]:
    return [layout.Run(survey, model, seed).file(results, "checkpoint.pt") for seed in seeds]


def load_models(paths: list[str | Path], device: str = "cpu") -> list[tuple[torch.nn.Module, dict]]:
    """(model, checkpoint) per seed, loaded safely; ClassifyError unless they agree on classes and image size."""
    from rgmorph.train import load_checkpoint

    loaded = [load_checkpoint(path, device) for path in paths]
    first = loaded[0][1]
    for (_, checkpoint), path in zip(loaded, paths):
        for key in ("class_names", "image_size", "model_name", "survey"):
            if checkpoint[key] != first[key]:
                raise ClassifyError(f"{path}: {key} {checkpoint[key]!r} differs from {paths[0]}'s {first[key]!r}")
    return loaded


def score(model: torch.nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (N, C), energy (N,)) of one checkpoint's model for (N, H, W) images.

    Probabilities: softmax of ``predict_logits`` (with the checkpoint's test-time augmentation).
    Energy: ``-logsumexp`` of the network's logits; with the D4 average, the mean of it over the 8 views."""
    from rgmorph.batched import D4Average, average_log_probabilities, d4_views
    from rgmorph.train import predict_logits

    images = torch.as_tensor(images, dtype=torch.float32)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if len(images) == 0:
        return np.zeros((0, 0)), np.zeros(0)
    if isinstance(model, D4Average):
        views = [predict_logits(model.model, view, batch_size).float() for view in d4_views(images)]
        log_probabilities = average_log_probabilities(views)  # what predict_logits(model, images) returns
        energy = torch.stack([-torch.logsumexp(view, dim=-1) for view in views]).mean(dim=0)
    else:
        logits = predict_logits(model, images, batch_size).float()
        log_probabilities = torch.log_softmax(logits, dim=-1)
        energy = -torch.logsumexp(logits, dim=-1)
    return torch.exp(log_probabilities).double().numpy(), energy.double().numpy()


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Predictive entropy in nats, -sum p ln p (0 ln 0 = 0)."""
    p = np.asarray(probabilities, dtype=np.float64)
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def validation_energies(models: list[tuple[torch.nn.Module, dict]], dataset: dict,
                        batch_size: int = 256) -> pd.DataFrame:
    """Per validation source of the training study: its energy averaged over the seeds whose validation
    set holds it (columns name, energy, seeds)."""
    index = {name: k for k, name in enumerate(dataset["names"].tolist())}
    rows = []
    for model, checkpoint in models:
        names = list(checkpoint["validation_names"])
        missing = [name for name in names if name not in index]
        if missing:
            raise ClassifyError(f"the training dataset lacks {len(missing)} validation source(s) of seed "
                                f"{checkpoint['seed']} ({', '.join(missing[:5])}): it is not the dataset this "
                                "checkpoint was trained on")
        _, energy = score(model, dataset["images"][[index[name] for name in names]], batch_size)
        rows += [{"name": name, "seed": int(checkpoint["seed"]), "energy": float(e)} for name, e in zip(names, energy)]
    frame = pd.DataFrame(rows)
    return (frame.groupby("name", sort=True).agg(energy=("energy", "mean"), seeds=("seed", "size")).reset_index())


def ood_threshold(models, dataset: dict, percentile: float = 95.0, batch_size: int = 256) -> tuple[dict, pd.DataFrame]:
    """(threshold record, per-source validation energies): the ``percentile`` of the validation energies."""
    energies = validation_energies(models, dataset, batch_size)
    threshold = float(np.percentile(energies["energy"].to_numpy(), percentile))
    record = {"method": "energy (Liu et al. 2020): -logsumexp(logits), mean over seeds", "percentile": percentile,
              "threshold": threshold, "validation_sources": int(len(energies)),
              "flagged_fraction_on_validation": float((energies["energy"] > threshold).mean()),
              "seeds": [int(c["seed"]) for _, c in models], "class_names": list(models[0][1]["class_names"])}
    return record, energies


def check_dataset_matches(dataset: dict, checkpoint: dict, where: str) -> None:
    """The shard's images have the size and (within 2%) the pixel scale the models were trained at."""
    if len(dataset["images"]) == 0:
        return
    size = int(dataset["images"].shape[-1])
    if size != int(checkpoint["image_size"]):
        raise ClassifyError(f"{where}: images are {size} px, the models were trained on {checkpoint['image_size']} px; "
                            "set classify.preprocess (crop, size) and classify.survey.pixels as the training study did")
    trained, here = checkpoint.get("pixel_scale_arcsec"), float(np.median(dataset["pixel_scale_arcsec"]))
    if trained and abs(here / trained - 1) > 0.02:
        raise ClassifyError(f"{where}: pixel scale {here:.3f} arcsec, the models were trained at {trained:.3f}; "
                            "use the training study's survey and preprocessing settings")


RESERVED_COLUMNS = {"name", "ra_deg", "dec_deg", "status", "reason", "predicted_class", "entropy", "ood_score",
                    "ood_threshold", "ood_flag", "n_seeds"}


def output_columns(class_names: list[str], carry: list[str]) -> list[str]:
    return [*SOURCE_COLUMNS, *carry, "status", "reason", "predicted_class",
            *[f"prob_{c}" for c in class_names], *[f"prob_{c}_std" for c in class_names],
            "entropy", "ood_score", "ood_threshold", "ood_flag", "n_seeds"]


def classify_shard(sources: pd.DataFrame, manifest: pd.DataFrame, dataset: dict, models, threshold: float,
                   batch_size: int = 256) -> pd.DataFrame:
    """The shard's table: one row per source of ``sources`` in its order (see ``output_columns``)."""
    class_names = list(models[0][1]["class_names"])
    for _, checkpoint in models:
        check_dataset_matches(dataset, checkpoint, f"shard dataset vs seed {checkpoint['seed']}")
    per_seed = [score(model, dataset["images"], batch_size) for model, _ in models]
    names = dataset["names"].tolist()
    carry = [column for column in sources.columns if column not in SOURCE_COLUMNS]
    table = sources.copy()
    fetched = manifest.set_index("name").reindex(table["name"])
    usable = fetched["status"].isin(USABLE_STATUSES).to_numpy()
    table["status"] = np.where(usable, CLASSIFIED, fetched["status"].fillna("failed").to_numpy())
    table["reason"] = np.where(usable, "", fetched["detail"].fillna("not in the fetch manifest").to_numpy())
    for column in output_columns(class_names, [])[5:]:
        table[column] = np.nan
    table["predicted_class"] = pd.Series([None] * len(table), dtype=object)
    table["ood_flag"] = pd.Series([pd.NA] * len(table), dtype="boolean")
    table["n_seeds"] = pd.Series([pd.NA] * len(table), dtype="Int64")
    if names:
        probabilities = np.stack([p for p, _ in per_seed])  # (seeds, N, C)
        mean, std = probabilities.mean(axis=0), probabilities.std(axis=0)
        energy = np.stack([e for _, e in per_seed]).mean(axis=0)
        rows = table.index[table["name"].isin(names)]
        order = pd.Series(range(len(names)), index=names).reindex(table.loc[rows, "name"]).to_numpy()
        for c, class_name in enumerate(class_names):
            table.loc[rows, f"prob_{class_name}"] = mean[order, c]
            table.loc[rows, f"prob_{class_name}_std"] = std[order, c]
        table.loc[rows, "predicted_class"] = np.array(class_names)[mean[order].argmax(axis=1)]
        table.loc[rows, "entropy"] = entropy(mean[order])
        table.loc[rows, "ood_score"] = energy[order]
        table.loc[rows, "ood_threshold"] = threshold
        table.loc[rows, "ood_flag"] = energy[order] > threshold
        table.loc[rows, "n_seeds"] = len(models)
        not_in_dataset = usable & ~table["name"].isin(names).to_numpy()
        if not_in_dataset.any():
            raise ClassifyError(f"{int(not_in_dataset.sum())} fetched source(s) are missing from the shard dataset")
    return table.reindex(columns=output_columns(class_names, carry))


def concatenate(shard_tables: list[str | Path], output: str | Path) -> pd.DataFrame:
    """The shards' tables, in shard order, as one table (written atomically)."""
    # as text: the shards' values (carried columns included) are copied, never re-parsed
    frames = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in shard_tables]
    table = pd.concat(frames, ignore_index=True)
    for frame, path in zip(frames, shard_tables):
        if list(frame.columns) != list(frames[0].columns):
            raise ClassifyError(f"{path} has other columns than {shard_tables[0]}; rerun its shard")
    write_csv_atomic(output, table)
    return table


def summary(table: pd.DataFrame) -> dict:
    classified = table["status"] == CLASSIFIED
    return {"sources": int(len(table)), "classified": int(classified.sum()),
            "not_classified": {status: int(n) for status, n in table.loc[~classified, "status"].value_counts().items()},
            "ood_flagged": int(table.loc[classified, "ood_flag"].astype(str).str.lower().eq("true").sum())}


def write_summary(table: pd.DataFrame, output: str | Path) -> dict:
    record = summary(table)
    write_json_atomic(output, record)
    return record
