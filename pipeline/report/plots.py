"""What every report plot shares: a figure whose title and legend fit inside the PNG, and line
styles that tell lines apart even where they lie on top of each other.

Figures are matplotlib `Figure`s on the Agg canvas, without pyplot (no GUI, no global figure
state), in constrained layout with the legend outside the axes, under them; the title is
wrapped to the figure's width; `figure_png` saves with `bbox_inches="tight"`, so nothing drawn
is cut off. Each line has its own pair of dash pattern and marker (`line_style`): the paper's
dashed captions (Reed's) and LLM lines of Table 1 run a few tenths of a point apart and would
otherwise hide one under the other.
"""

from __future__ import annotations

import io
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib loads with the first figure: `--compare` draws none
    from matplotlib.figure import Figure

DPI = 110
TITLE_SIZE = 10  # points
SOLID, DASHED, DOTTED, DASH_DOT = "-", (0, (6, 2)), (0, (1.5, 1.5)), (0, (5, 1.5, 1, 1.5))
DASH_DOT_DOT = (0, (5, 1.5, 1, 1.5, 1, 1.5))
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]  # one per line, cycled


def new_figure(width: float, height: float, **subplots) -> tuple[Figure, object]:
    """A constrained-layout figure of `width` x `height` inches and its axes
    (Figure.subplots(**subplots))."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def wrap_title(text: str, fig: Figure, size: float = TITLE_SIZE) -> str:
    """`text` in lines no wider than the figure (about 0.55 em a character)."""
    width = int(fig.get_figwidth() * 72 / (0.55 * size))
    return textwrap.fill(text, width=max(width, 20))


def legend_under(fig: Figure, handles, labels, columns: int = 2) -> None:
    """The legend outside the axes, under them: it never covers a line or the title."""
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, fontsize=8,
               frameon=False)


def line_style(dashes, marker: str, filled: bool = True) -> dict:
    """Keyword arguments of `Axes.plot` for a line of `dashes` and `marker`; an open marker is
    drawn larger, so a filled one under it still shows."""
    return {"linestyle": dashes, "marker": marker, "markersize": 5 if filled else 8,
            **({} if filled else {"markerfacecolor": "none", "markeredgewidth": 1.3})}


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """PNG bytes of `fig`, cropped to what it draws (bbox_inches='tight': nothing cut off)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.1)
    return buffer.getvalue()
