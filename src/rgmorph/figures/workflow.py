"""What every figure script does around its plot: log, embed provenance in the files, write sidecars."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rgmorph import provenance
from rgmorph.figures.style import embedding
from rgmorph.logs import logged


def figure_job(snakemake, plot: Callable[[Path], None]) -> None:
    """Run ``plot(stem)`` for a figure rule (outputs ``png`` and ``pdf``) with provenance."""
    with logged(snakemake.log[0]) as log:
        inputs = dict(snakemake.input.items())
        params = dict(snakemake.params.items())
        record = provenance.pre_output_record("figure", inputs, params, dict(snakemake.config), snakemake.rule)
        stem = Path(snakemake.output.png).with_suffix("")
        with embedding(provenance.embedded_metadata(record)):
            plot(stem)
        for path in provenance.from_snakemake(snakemake, "figure", outputs=[snakemake.output.png, snakemake.output.pdf]):
            log.info("provenance: %s", path)
