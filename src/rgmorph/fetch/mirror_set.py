"""Cutouts from several mirrors, tried in order (``fetch.mirror_dir`` as a list)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rgmorph.fetch.common import MAX_CUTOUT_BYTES, FetchError, FetchSettings, PermanentFetchError, Survey
from rgmorph.fetch.mirror import MIRROR_MATCH_ARCSEC, MirrorSource, _raise_if_unreadable


class MirrorSet:
    """Several mirrors in order: a source's cutout comes from the first whose index.csv holds it."""

    def __init__(self, mirror_dirs_: list[str | Path], max_bytes: int = MAX_CUTOUT_BYTES):
        self.mirrors = [MirrorSource(root, max_bytes) for root in mirror_dirs_]
        self.requests = 0
        self._names = ", ".join(str(m.root) for m in self.mirrors)

    def _holding(self, survey: Survey) -> list[MirrorSource]:
        return [m for m in self.mirrors if (m.index["survey"] == survey.skyview_name).any()]

    def _find(self, survey: Survey, ra_deg: float, dec_deg: float) -> tuple[MirrorSource, pd.Series]:
        for mirror in self._holding(survey):
            try:
                return mirror, mirror._locate(survey, ra_deg, dec_deg)
            except PermanentFetchError:
                continue
        raise PermanentFetchError(f"none of the mirrors ({self._names}) has a '{survey.skyview_name}' cutout "
                                  f"within {MIRROR_MATCH_ARCSEC} arcsec")

    def preflight(self, survey: Survey, sources: pd.DataFrame, settings: FetchSettings) -> None:
        if not self._holding(survey):
            held = sorted(set().union(*(set(m.index["survey"]) for m in self.mirrors)))
            raise FetchError(
                f"none of the mirrors ({self._names}) holds '{survey.skyview_name}' cutouts (config "
                f"surveys.{survey.key}.skyview_name); their index.csv files list {held}. Use one of those names or "
                "add a mirror that holds this survey."
            )
        _raise_if_unreadable(sources, survey, self._find, "mirrors", name_mirror=True)

    def expected_sha256(self, survey: Survey, ra_deg: float, dec_deg: float) -> str:
        return self._find(survey, ra_deg, dec_deg)[1]["sha256"]

    def get(self, survey: Survey, ra_deg: float, dec_deg: float) -> bytes:
        mirror, entry = self._find(survey, ra_deg, dec_deg)
        return mirror._read(entry)
