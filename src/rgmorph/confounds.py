"""Confounds: is the test accuracy the same across parent catalogues and redshift?

FRDEEP (Tang, Scaife & Leahy 2019) took every FRII from CoNFIG (Gendre et al. 2008, 2010) and most
FRI from FRICAT (Capetti, Massaro & Baldi 2017), whose sources sit at far lower redshift. A network
could then learn "which catalogue / how distant" rather than FRI against FRII. This module tags each
source with its parent catalogue (nearest-position match) and a redshift bin, and tabulates the test
accuracy of every variant per group, overall and within each class, as mean and std over seeds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
import pandas as pd
from astropy.coordinates import SkyCoord

from rgmorph.evaluate import GROUP_COLUMNS, group_columns, read_predictions
from rgmorph.files import write_csv_atomic

log = logging.getLogger(__name__)

Z_BINS = (0.0, 0.1, 0.3, 0.6, math.inf)
RADIUS_ARCSEC = 5.0
ALL = "all"
UNKNOWN_Z = "unknown"
NO_PARENT, BOTH_PARENTS = "none", "both"


@dataclass(frozen=True)
class ParentFormat:
    """How one parent catalogue writes positions, and which of its rows FRDEEP drew on."""

    ra_column: str
    dec_column: str
    ra_unit: str  # 'deg' or 'hourangle' (sexagesimal hours)
    select: dict[str, list] = field(default_factory=dict)  # column -> kept values (stripped strings)


# FRDEEP took CoNFIG sources with mt in {I, II} and u_mt == "c" (confirmed), and all of FRICAT.
PARENT_FORMATS: dict[str, ParentFormat] = {
    "CoNFIG": ParentFormat("RAJ2000", "DEJ2000", "hourangle", {"mt": ["I", "II"], "u_mt": ["c"]}),
    "FRICAT": ParentFormat("_RA", "_DE", "deg"),
}


def read_parent(path: str | Path, fmt: ParentFormat) -> SkyCoord:
    """Positions of the rows of one parent catalogue that FRDEEP selected from."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in [fmt.ra_column, fmt.dec_column, *fmt.select] if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    keep = np.ones(len(raw), dtype=bool)
    for column, values in fmt.select.items():
        keep &= raw[column].str.strip().isin([str(v) for v in values]).to_numpy()
    rows = raw[keep]
    ra, dec = rows[fmt.ra_column].str.strip(), rows[fmt.dec_column].str.strip()
    if fmt.ra_unit == "deg":
        return SkyCoord(ra.astype(float).to_numpy() * u.deg, dec.astype(float).to_numpy() * u.deg)
    return SkyCoord(ra.to_list(), dec.to_list(), unit=(u.hourangle, u.deg))


def parent_separations(sources: pd.DataFrame, parents: Mapping[str, str | Path],
                       formats: Mapping[str, ParentFormat] | None = None) -> pd.DataFrame:
    """Separation (arcsec) of each source from the nearest row of every parent catalogue (index as sources)."""
    formats = PARENT_FORMATS if formats is None else formats
    coords = SkyCoord(sources["ra_deg"].to_numpy(float) * u.deg, sources["dec_deg"].to_numpy(float) * u.deg)
    separations = {}
    for name, path in parents.items():
        if name not in formats:
            raise KeyError(f"no column convention for parent catalogue {name!r}; known: {sorted(formats)}")
        catalogue = read_parent(path, formats[name])
        if len(catalogue) == 0 or len(coords) == 0:
            separations[name] = np.full(len(coords), np.inf)
            continue
        _, separation, _ = coords.match_to_catalog_sky(catalogue)
        separations[name] = separation.to_value(u.arcsec)
    return pd.DataFrame(separations, index=sources.index)


def parent_catalogues(sources: pd.DataFrame, parents: Mapping[str, str | Path], radius_arcsec: float = RADIUS_ARCSEC,
                      formats: Mapping[str, ParentFormat] | None = None) -> pd.Series:
    """Each source's parent catalogue: its name, 'both' (within the radius of two or more) or 'none'.

    ``sources`` needs ``ra_deg`` and ``dec_deg``; ``parents`` maps a name of PARENT_FORMATS (or of
    ``formats``) to its CSV file.
    """
    within = parent_separations(sources, parents, formats) <= radius_arcsec
    count = within.sum(axis=1)
    first = within.idxmax(axis=1) if within.shape[1] else pd.Series(NO_PARENT, index=sources.index)
    parent = pd.Series(np.where(count == 0, NO_PARENT, np.where(count > 1, BOTH_PARENTS, first)),
                       index=sources.index, name="parent_catalogue")
    return parent


def bin_labels(edges: Sequence[float] = Z_BINS) -> list[str]:
    """'[lo, hi)' for each pair of edges, in order."""
    return [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges[:-1], edges[1:])]


def redshift_bins(z, edges: Sequence[float] = Z_BINS) -> pd.Series:
    """'[lo, hi)' bin of each redshift; missing, non-numeric or out-of-range z -> 'unknown'."""
    z = pd.to_numeric(pd.Series(z), errors="coerce")
    binned = pd.cut(z, bins=list(edges), right=False, labels=bin_labels(edges))
    return binned.cat.add_categories([UNKNOWN_Z]).fillna(UNKNOWN_Z).astype(str)


def _predictions(runs: pd.DataFrame) -> pd.DataFrame:
    """Every run's test predictions, one row per (run, source), with ``correct``."""
    frames = []
    for run in runs.itertuples(index=False):  # one file per run, not a loop over sources
        frame = read_predictions(run.predictions_file)
        frame = frame.assign(**{column: getattr(run, column) for column in [*group_columns(runs), "seed"]})
        frames.append(frame)
    joined = pd.concat(frames, ignore_index=True)
    joined["name"] = joined["name"].astype(str)
    joined["correct"] = (joined["predicted"].astype(int) == joined["label"].astype(int)).astype(float)
    return joined


def accuracy_by_group(runs_csv: str | Path, sources_csv: str | Path, parents: Mapping[str, str | Path] | None,
                      z_bins: Sequence[float] = Z_BINS, radius_arcsec: float = RADIUS_ARCSEC,
                      formats: Mapping[str, ParentFormat] | None = None) -> pd.DataFrame:
    """Test accuracy of every variant by parent catalogue and by redshift bin, overall and within each class.

    One row per (variant, grouping, group, class_name): ``grouping`` is 'all', 'parent_catalogue' or
    'redshift'; ``class_name`` is 'all' or one class (the cross of class x group). ``accuracy_mean`` and
    ``accuracy_std`` (ddof 1; 0 for one seed) are over seeds, ``n_sources`` counts the test sources in
    the group and ``n_<class>`` its class mix. ``parents=None`` takes a ``parent_catalogue`` column
    already in the sources file, else its ``catalogue`` column (which input catalogue each source came from).
    """
    runs = pd.read_csv(runs_csv, dtype={column: str for column in [*GROUP_COLUMNS, "mode"]}, keep_default_na=False)
    variant_columns = group_columns(runs)
    sources = pd.read_csv(sources_csv, dtype={"name": str})
    if parents is not None:
        sources["parent_catalogue"] = parent_catalogues(sources, parents, radius_arcsec, formats)
    elif "parent_catalogue" not in sources.columns:
        if "catalogue" not in sources.columns:
            raise ValueError(f"{sources_csv}: no parent_catalogue or catalogue column and no parent catalogues given")
        sources["parent_catalogue"] = sources["catalogue"]  # the study's own input catalogues (e.g. frdeep, mirabest)
    z = sources["z"] if "z" in sources.columns else pd.Series(np.nan, index=sources.index)  # no z: 'unknown'
    sources["redshift"] = redshift_bins(z, z_bins).to_numpy()
    sources["all"] = ALL

    predictions = _predictions(runs)
    tagged = predictions.merge(sources[["name", "parent_catalogue", "redshift", "all"]], on="name", how="left",
                               validate="many_to_one")
    unmatched = tagged["parent_catalogue"].isna()
    if unmatched.any():
        log.warning("%d predictions name sources missing from %s; tagged 'none'/'unknown'",
                    tagged.loc[unmatched, "name"].nunique(), sources_csv)
        tagged = tagged.fillna({"parent_catalogue": NO_PARENT, "redshift": UNKNOWN_Z, "all": ALL})

    class_order = (predictions.drop_duplicates("class_name").sort_values("label")["class_name"].tolist())
    tables = []
    for grouping in ["all", "parent_catalogue", "redshift"]:
        frame = tagged.assign(grouping=grouping, group=tagged[grouping])
        both = pd.concat([frame.assign(class_name=ALL), frame], ignore_index=True)
        keys = [*variant_columns, "grouping", "group", "class_name"]
        per_seed = both.groupby([*keys, "seed"], sort=False, dropna=False)["correct"].mean()
        over_seeds = per_seed.groupby(level=keys, sort=False, dropna=False).agg(
            seeds="size", accuracy_mean="mean", accuracy_std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0)
        members = both.drop_duplicates([*keys, "name"])
        mix = (members.assign(true_class=members["name"].map(dict(zip(predictions["name"], predictions["class_name"]))))
               .groupby(keys, sort=False, dropna=False)["true_class"].value_counts().unstack(fill_value=0)
               .reindex(columns=class_order, fill_value=0))
        mix.columns = [f"n_{name}" for name in mix.columns]
        mix.insert(0, "n_sources", mix.sum(axis=1))
        tables.append(over_seeds.join(mix).reset_index())
    table = pd.concat(tables, ignore_index=True)
    return _ordered(table, z_bins, class_order, variant_columns)


def _ordered(table: pd.DataFrame, z_bins: Sequence[float], class_order: list[str],
             variant_columns: Sequence[str] = GROUP_COLUMNS) -> pd.DataFrame:
    order = {ALL: 0, **{name: k + 1 for k, name in enumerate(sorted(set(table.loc[
        table["grouping"] == "parent_catalogue", "group"]) - {BOTH_PARENTS, NO_PARENT}))},
        BOTH_PARENTS: 90, NO_PARENT: 91}
    order.update({label: k + 1 for k, label in enumerate(bin_labels(z_bins))})
    order[UNKNOWN_Z] = 99
    grouping_order = {"all": 0, "parent_catalogue": 1, "redshift": 2}
    class_rank = {ALL: 0, **{name: k + 1 for k, name in enumerate(class_order)}}
    table = table.assign(_g=table["grouping"].map(grouping_order), _k=table["group"].map(order).fillna(50),
                         _c=table["class_name"].map(class_rank))
    table = table.sort_values([*variant_columns, "_g", "_c", "_k"], kind="stable").drop(columns=["_g", "_k", "_c"])
    columns = [*variant_columns, "grouping", "group", "class_name", "seeds", "accuracy_mean", "accuracy_std",
               "n_sources", *[f"n_{name}" for name in class_order]]
    return table[columns].reset_index(drop=True)


def write_confounds_table(runs_csv: str | Path, sources_csv: str | Path, parents: Mapping[str, str | Path] | None,
                          table_path: str | Path, z_bins: Sequence[float] = Z_BINS,
                          radius_arcsec: float = RADIUS_ARCSEC) -> pd.DataFrame:
    """accuracy_by_group, written atomically to ``table_path`` (CSV)."""
    table = accuracy_by_group(runs_csv, sources_csv, parents, z_bins, radius_arcsec)
    write_csv_atomic(table_path, table, float_format="%.4f")
    return table
