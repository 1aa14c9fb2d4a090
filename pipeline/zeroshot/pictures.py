"""One picture per explained image: the image beside the descriptors that decided it.

The predicted class's best-matching descriptors as horizontal bars of their cosine with the image
(and, for a wrong prediction, the true class's below, in another colour), each block headed by the
class name and its CBD score. The bars start at 0, on one axis for both blocks: cosines of 0.616,
0.614 and 0.613 look nearly equal, as they are (an axis zoomed on their narrow band made them
look very different). Each descriptor is shown whole, wrapped (never cut: the trait that tells
sibling species apart is often its last words); the picture grows with its lines. Drawn with
matplotlib's Agg canvas, without pyplot: no GUI, no global figure state.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from pipeline.common import InputError
from pipeline.zeroshot.explanations import descriptor_phrase

COLOURS = {"right": "tab:green", "wrong": "tab:red", "true": "tab:blue"}
WRAP = 60  # characters per line of a descriptor label
LINE_INCHES = 0.15  # height of a label line (7 pt text)


def descriptor_labels(block: pd.DataFrame) -> list[str]:
    """A block's descriptors, best first, each whole and wrapped to WRAP characters a line."""
    block = block.sort_values("rank")
    return [textwrap.fill(descriptor_phrase(text, name), WRAP, break_long_words=False)
            for text, name in zip(block["descriptor"], block["class_name"])]


def _draw_block(ax, block: pd.DataFrame, colour: str, heading: str) -> None:
    """A class's top descriptors, best on top, as bars of their cosine with the image."""
    block = block.sort_values("rank")
    labels = descriptor_labels(block)
    positions = range(len(block))
    ax.barh(positions, block["similarity"], color=colour, height=0.7)
    ax.set_yticks(list(positions), labels, fontsize=7)
    ax.invert_yaxis()
    for y, value in zip(positions, block["similarity"]):
        ax.text(value, y, f" {value:.3f}", va="center", fontsize=6)
    ax.set_title(heading, fontsize=8, loc="left")
    ax.tick_params(axis="x", labelsize=7)


def explanation_picture(image_path: Path, rows: pd.DataFrame, *, title: str) -> bytes:
    """Draw `rows` (the `explain` rows of one image) beside the image at `image_path`: PNG
    bytes."""
    buffer = io.BytesIO()
    explanation_figure(image_path, rows, title=title).savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def explanation_figure(image_path: Path, rows: pd.DataFrame, *, title: str) -> Figure:
    """The picture of `explanation_picture`, as a matplotlib Figure."""
    image_path = Path(image_path)
    if not image_path.is_file():
        raise InputError(f"image {image_path} does not exist")
    if rows["image_id"].nunique() != 1 or not (rows["role"] == "predicted").any():
        raise InputError(f"explanation_picture needs the rows of exactly one image, with its "
                         f"prediction; got {rows['image_id'].nunique()} images")
    predicted = rows[rows["role"] == "predicted"]
    true = rows[rows["role"] == "true"]
    correct = bool(predicted["correct"].iloc[0])
    blocks = [(predicted, COLOURS["right" if correct else "wrong"], "predicted")]
    if len(true):
        blocks.append((true, COLOURS["true"], "true class"))

    # a block's height: its label lines (at least one bar's worth of room each) and its title
    heights = [sum(max(label.count("\n") + 1, 2) for label in descriptor_labels(block)) + 2
               for block, _, _ in blocks]
    fig = Figure(figsize=(11, max(3.0, 0.6 + LINE_INCHES * sum(heights))), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(len(blocks), 2, width_ratios=[1, 2.2], height_ratios=heights)
    with Image.open(image_path) as image:
        ax = fig.add_subplot(grid[:, 0])
        ax.imshow(image.convert("RGB"))
        ax.set_axis_off()
    # from 0 (or below, for a negative cosine), the same for both blocks, room for the values
    low = min(0.0, float(rows["similarity"].min()) * 1.15)
    high = max(float(rows["similarity"].max()) * 1.15, 1e-3)
    for i, (block, colour, role) in enumerate(blocks):
        ax = fig.add_subplot(grid[i, 1])
        first = block.iloc[0]
        _draw_block(ax, block, colour,
                    f"{role}: {first['class_name']} (score {first['class_score']:.3f})")
        ax.set_xlim(low, high)
    fig.suptitle(title, fontsize=9)
    return fig
