"""One look for every figure: Okabe-Ito colours, journal column widths, PNG (300 dpi) + PDF.

The Okabe-Ito palette stays distinct for colour-blind readers and in greyscale print; images use
'inferno' (perceptually uniform) with a square-root stretch, maps of signed values 'PuOr'.
``save_figure`` writes both formats atomically; what each figure was made from is in its
``.prov.json`` sidecar (rgmorph.provenance).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
SURVEY_COLOURS = {"FIRST": OKABE_ITO[0], "NVSS": OKABE_ITO[1]}
CLASS_COLOURS = {"FRI": OKABE_ITO[2], "FRII": OKABE_ITO[3]}
SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.1
IMAGE_COLOURMAP = "inferno"
DIVERGING_COLOURMAP = "PuOr_r"
# A square-root stretch shows faint lobes beside bright cores; it is named on every image figure.
IMAGE_STRETCH = matplotlib.colors.PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)

plt.rcParams.update({
    "font.size": 9, "axes.labelsize": 9, "axes.titlesize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.dpi": 100, "savefig.dpi": 300,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO), "savefig.bbox": "tight",
    "pdf.fonttype": 42,  # embed TrueType so journals accept the PDF
    "axes.spines.top": False, "axes.spines.right": False,
})

def _metadata(suffix: str, title: str | None) -> dict:
    metadata: dict = {"CreationDate": None} if suffix == ".pdf" else {}  # the same inputs give the same bytes
    if title:
        metadata["Title"] = title
    return metadata


def save_figure(figure, stem: str | Path, title: str | None = None) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf (atomically) and close the figure."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if title is None:
        title = figure.get_suptitle() or None
    title = re.sub(r"\$[^$]*\$", "", title).strip() if title else title
    written = []
    for suffix in (".png", ".pdf"):
        target = stem.with_suffix(suffix)
        temporary = target.with_name(f".{target.name}.part")
        figure.savefig(temporary, format=suffix[1:], metadata=_metadata(suffix, title))
        temporary.replace(target)
        written.append(target)
    plt.close(figure)
    return written


def field_extent_arcmin(dataset: dict, index: int) -> list[float]:
    half = dataset["images"].shape[-1] * dataset["pixel_scale_arcsec"][index] / 60.0 / 2.0
    return [-half, half, -half, half]


def show_image(axis, image: np.ndarray, extent=None, ticks: bool = True):
    shown = axis.imshow(image, origin="lower", cmap=IMAGE_COLOURMAP, norm=IMAGE_STRETCH, extent=extent,
                        interpolation="nearest")
    if not ticks:
        axis.set_xticks([])
        axis.set_yticks([])
    return shown


def empty_state(axis, message: str) -> None:
    """A panel that says why there is nothing to plot (instead of a blank or a crash)."""
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_box_aspect(1)
    for spine in axis.spines.values():
        spine.set_visible(True)
        spine.set_linestyle(":")
        spine.set_color("grey")
    axis.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=8, color="0.3",
              transform=axis.transAxes)


def label_width(panel_in: float, fontsize: float = 6, most: int = 20, em: float = 0.57) -> int:
    """How many characters of a ``fontsize`` title fit across a panel ``panel_in`` inches wide (at most
    ``most``): digits, which fill source names, take about 0.57 em each, prose about 0.5."""
    return max(8, min(most, int(panel_in * 72 / (em * fontsize))))


def _wrap_tokens(paragraph: str, width: int) -> list[str]:
    """Words with their trailing spaces; a word longer than ``width`` split after its '_' and '-' too, so
    that file-name-like source names wrap."""
    tokens = []
    for word in re.findall(r"\S+\s*|\s+", paragraph):
        tokens += [word] if len(word.rstrip()) <= width else re.findall(r"[^_-]*[_-]+|[^_-]+", word)
    return tokens


def wrap_label(text: str, width: int = 20, max_lines: int | None = None) -> str:
    """``text`` in lines of at most ``width`` characters (existing line breaks kept); past ``max_lines``
    lines it is cut, the last line ending in an ellipsis. Panel titles, tick and legend labels use it, so
    that long class and source names stay within their panel."""
    lines = []
    for paragraph in str(text).split("\n"):
        line = ""
        for token in _wrap_tokens(paragraph, width):
            if line and len((line + token).rstrip()) > width:
                lines.append(line.rstrip())
                line = ""
            while len(token.rstrip()) > width:  # no break in sight: cut the word
                lines.append(token[:width])
                token = token[width:]
            line += token
        lines.append(line.rstrip())
    if max_lines and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:width - 1].rstrip() + "\u2026"
    return "\n".join(lines)
