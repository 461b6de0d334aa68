"""Merge several labelled catalogues into one source list by sky position.

Rows of different catalogues within ``match_radius_arcsec`` of each other are linked, and each
group of linked rows (linked through any chain) is one source:

- all members give the same class: one source, with the name and position of its first member
  in config order;
- the classes conflict: the group is left out and listed in the report, unless a catalogue in
  ``prefer`` (most preferred first) is in the group: then its first member is kept with its class;
- the members' splits differ: test wins over train, train over any other split (e.g.
  ``uncertain``), so no object is both trained on and tested on.

Rows of the same catalogue are never linked directly (a catalogue's own near pairs are the
duplicate and neighbour checks' business), but two of them can fall into one group through a
row of another catalogue; they are then one source too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from rgmorph.errors import CatalogueError

# a merged source takes the first of these that any member has
SPLIT_PRECEDENCE = ("test", "validation", "train")


def match_groups(table: pd.DataFrame, radius_arcsec: float) -> np.ndarray:
    """Group number per row: rows of different catalogues within the radius share a group; a row
    without a position is a group of its own (it cannot be matched)."""
    placed = np.flatnonzero(table["ra_deg"].notna().to_numpy())
    groups = np.arange(len(table))
    if len(placed) < 2:
        return groups
    located = table.iloc[placed]
    coords = SkyCoord(located["ra_deg"].to_numpy(float) * u.deg, located["dec_deg"].to_numpy(float) * u.deg)
    first, second, _, _ = coords.search_around_sky(coords, radius_arcsec * u.arcsec)
    catalogue = located["catalogue"].to_numpy()
    keep = catalogue[first] != catalogue[second]
    graph = coo_matrix((np.ones(keep.sum()), (first[keep], second[keep])), shape=(len(placed), len(placed)))
    groups[placed] = len(table) + connected_components(graph, directed=False)[1]
    return groups


def merged_split(splits) -> str:
    for split in SPLIT_PRECEDENCE:
        if split in set(splits):
            return split
    return list(splits)[0]


def _describe(members: pd.DataFrame) -> list[str]:
    return [f"{row.catalogue}:{row.name} ({row.class_name}, {row.split})" for row in members.itertuples(index=False)]


def _resolve(members: pd.DataFrame, prefer: list[str]) -> tuple[pd.Series | None, str]:
    """(the kept row or None, what happened: 'merged', 'preferred <catalogue>' or 'left out')."""
    if members["class_name"].nunique() == 1:
        return members.iloc[0], "merged"
    for catalogue in prefer:
        chosen = members[members["catalogue"] == catalogue]
        if len(chosen) and chosen["class_name"].nunique() == 1:
            return chosen.iloc[0], f"preferred {catalogue}"
    return None, "left out"


def _group_record(members: pd.DataFrame, kept: pd.Series | None, outcome: str) -> dict:
    coords = SkyCoord(members["ra_deg"].to_numpy() * u.deg, members["dec_deg"].to_numpy() * u.deg)
    return {"members": _describe(members), "kept": None if kept is None else f"{kept['catalogue']}:{kept['name']}",
            "outcome": outcome, "max_separation_arcsec": round(float(coords[0].separation(coords).arcsec.max()), 3),
            "split": None if kept is None else merged_split(members["split"]),
            "splits_differ": bool(members["split"].nunique() > 1)}


def merge_catalogues(tables: list[tuple[str, pd.DataFrame]], radius_arcsec: float,
                     prefer: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """(one row per source with a ``catalogue`` column, the merge report) from (name, table) pairs in config order."""
    prefer = list(prefer or [])
    combined = pd.concat([table.assign(catalogue=name) for name, table in tables], ignore_index=True)
    groups = match_groups(combined, radius_arcsec) if len(combined) > 1 else np.zeros(len(combined), int)
    kept_rows, records = [], []
    for _, members in combined.groupby(groups, sort=False):
        if len(members) == 1:
            kept_rows.append(members.iloc[0])
            continue
        kept, outcome = _resolve(members, prefer)
        records.append(_group_record(members, kept, outcome))
        if kept is not None:
            kept_rows.append(kept.copy())
            kept_rows[-1]["split"] = records[-1]["split"]
    merged = pd.DataFrame(kept_rows).reset_index(drop=True)
    _check_unique_names(merged)
    return merged, _report(tables, radius_arcsec, prefer, records, merged)


def _check_unique_names(merged: pd.DataFrame) -> None:
    repeated = merged[merged["name"].duplicated(keep=False)].sort_values("name")
    if len(repeated):
        listing = "; ".join(f"{name} in {', '.join(rows['catalogue'])}" for name, rows in repeated.groupby("name"))
        raise CatalogueError(f"catalogue.sources: name(s) used by different sources further apart than "
                             f"catalogue.match_radius_arcsec: {listing}; rename them in one catalogue")


def _report(tables, radius_arcsec, prefer, records, merged) -> dict:
    pairs = {}  # how many groups hold exactly these catalogues
    for record in records:
        key = "+".join(sorted({member.split(":")[0] for member in record["members"]}))
        pairs[key] = pairs.get(key, 0) + 1
    outcomes = [record["outcome"] for record in records]
    return {
        "match_radius_arcsec": radius_arcsec, "prefer": prefer,
        "rows_per_catalogue": {name: int(len(table)) for name, table in tables},
        "groups_by_catalogues": pairs,
        "duplicates_merged": outcomes.count("merged"),
        "conflicts_resolved_by_prefer": sum(outcome.startswith("preferred") for outcome in outcomes),
        "conflicts_left_out": outcomes.count("left out"),
        "kept_with_split_changed": sum(record["splits_differ"] and record["kept"] is not None for record in records),
        "sources_after_merge": int(len(merged)),
        # only where some have none: the reports of catalogues with positions stay as they were
        **({"sources_without_position": unplaced} if (unplaced := int(merged["ra_deg"].isna().sum())) else {}),
        "groups": records,
    }
