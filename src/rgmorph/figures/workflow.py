"""What every figure script does around its plot: log, write provenance sidecars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rgmorph import provenance
from rgmorph.logs import logged


def figure_job(snakemake, plot: Callable[[Path], None]) -> None:
    """Run ``plot(stem)`` for a figure rule (outputs ``png`` and ``pdf``) with provenance."""
    with logged(snakemake.log[0]) as log:
        plot(Path(snakemake.output.png).with_suffix(""))
        for path in provenance.from_snakemake(snakemake, "figure", outputs=[snakemake.output.png, snakemake.output.pdf]):
            log.info("provenance: %s", path)
