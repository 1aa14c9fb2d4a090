"""Table 1 of the paper, ours beside theirs: CSV, Markdown and a plot."""

from __future__ import annotations

import dataclasses

import pandas as pd

from pipeline.report.labels import PAPER_TEXT_KIND, SOURCES, source_label
from pipeline.report.paper import TABLE1
from pipeline.report.plots import (DASH_DOT, DASH_DOT_DOT, DASHED, DOTTED, SOLID, TITLE_SIZE,
                                   figure_png, legend_under, line_style, new_figure, wrap_title)

TABLE1_COLUMNS = ["image_ratio", "text_ratio", "text_source", "selection", "top1", "top5"]
# the columns in the shared vocabulary, the description set's kind unknown ("descriptions")
SOURCE_LABELS = {source: source_label(source) for source in SOURCES}
PAPER_SOURCES = ("none", "captions", "descriptions")  # the paper's columns; the others if trained


# Said on every Table 1 made without a Q-Former (data.coco: null).
NO_QFORMER = ("No Q-Former columns: data.coco is null, and the Q-Former trains on COCO, so "
              "the text columns here hold raw CLIP text features (\"no Q-Former\") and the "
              "paper's mapped-text columns are left out.")


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a report was made from, said on every table: a demo's 20 drawn species are not CUB,
    and attribute sentences are not an LLM's."""

    dataset: str = "CUB-200-2011"  # e.g. "demo world (20 made-up bird species, drawn)"
    test_images: int | None = None
    clip: str = ""  # e.g. "ViT-B-32 (openai)"
    backbone: str = ""  # its name in clip.backbones
    # what the description column holds (pipeline.report.labels.text_kind): "LLM descriptions",
    # "attribute sentences", ...
    text_label: str = PAPER_TEXT_KIND
    descriptions: str = ""  # where the adapter's descriptions came from (set, backend, prompt)
    references: tuple[tuple[str, float, float], ...] = ()  # (row, top-1, top-5) on the same test
    paper: bool = True  # False: a dataset the paper's numbers (CUB's) are not about
    # False: the published numbers shown as a reference only, their differences not coloured
    # (the demo: a made-up world in CUB's layout, where red and green would read as findings)
    colour_diffs: bool = True
    # the best text-prior few-shot method per ratio (pipeline.report.few_shot.best_text_prior),
    # a column beside the class-balanced cells; None: no few-shot method trained
    best_prior: pd.DataFrame | None = None
    prior: str = ""  # the description set those methods took their prior from
    qformer: bool = True  # False: no Q-Former was trained (no COCO): NO_QFORMER says why

    def labels(self, cells: pd.DataFrame | None = None) -> dict[str, str]:
        """Table 1's column names, the description columns named for what they hold: the
        paper's three, and the ablation's where `cells` has them."""
        shown = sources(cells) if cells is not None else list(SOURCE_LABELS)
        return {source: source_label(source, self.text_label) for source in shown}

    def heading(self) -> str:
        versus = ", ours vs the paper" if self.paper else " (the paper's numbers are CUB's: not shown)"
        on = f", backbone {self.backbone}" if self.backbone else ""
        return f"Table 1: {self.dataset}{on}, top-1 % of the adapter{versus}"

    def what_ran(self) -> str:
        test = f", {self.test_images} test images" if self.test_images else ""
        parts = [f"Dataset: {self.dataset}{test}."]
        if self.clip:
            parts.append(f"CLIP: {self.clip}.")
        if self.descriptions:
            parts.append(f"Descriptions (the {self.text_label} column): {self.descriptions}.")
        if not self.qformer:
            parts.append(NO_QFORMER)
        return " ".join(parts)


def table1(results: pd.DataFrame, paper: dict = TABLE1) -> pd.DataFrame:
    """One row per Table 1 cell (mean over seeds) with the paper's top-1 beside ours.

    results: one row per adapter run (image_ratio, text_source, selection, seed, top1, top5).
    paper: the published cells ({} for a dataset they are not about: no paper column values).
    """
    # ratios are whole percents; a results table with zero-shot rows (no ratio) holds floats
    results = results.astype({"image_ratio": int})
    if "text_mapping" in results:  # the ablation's runs are columns of their own
        unmapped = results["text_mapping"] == "none"
        results = results.assign(text_source=results["text_source"].where(
            ~unmapped, results["text_source"] + "_unmapped"))
    cells = (results.groupby(["image_ratio", "text_source", "selection"], as_index=False)
             .agg(top1=("top1", "mean"), top5=("top5", "mean"), top1_std=("top1", "std"),
                  seeds=("seed", "nunique")))
    cells["text_ratio"] = 100 - cells["image_ratio"]
    cells["paper_top1"] = [paper.get(s, {}).get((r, t)) for r, t, s in
                           zip(cells["image_ratio"], cells["text_source"], cells["selection"])]
    cells["diff_top1"] = cells["top1"] - cells["paper_top1"]
    return sort_cells(cells)[TABLE1_COLUMNS + ["top1_std", "seeds", "paper_top1", "diff_top1"]]


def sort_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The paper's reading order: per selection, per text source (image only, captions,
    descriptions), image ratio from 100 down to 0."""
    order = {s: i for i, s in enumerate(SOURCE_LABELS)}
    return cells.sort_values(["selection", "text_source", "image_ratio"],
                             key=lambda col: col.map(order) if col.name == "text_source" else col,
                             ascending=[True, True, False], ignore_index=True)


def sources(cells: pd.DataFrame) -> list[str]:
    """Table 1's columns: the paper's three, then the ablation's, each where the cells hold it
    (a dataset without per-image captions has no caption column)."""
    present = set(cells["text_source"])
    return [s for s in SOURCE_LABELS if s in present]


def selections(cells: pd.DataFrame) -> list[str]:
    """The selections a table holds, in its order (class_balanced, the paper, before global)."""
    return list(dict.fromkeys(cells["selection"]))


def format_number(value: float | None, fmt: str = "{:.2f}") -> str:
    """A table cell: the number, or "-" where there is none (None or NaN)."""
    return "-" if value is None or pd.isna(value) else fmt.format(value)


def table1_markdown(cells: pd.DataFrame, context: RunContext) -> str:
    """The paper's layout: a row per (image, text) ratio, a column pair (ours, paper) per source,
    after what was run and the reference rows (zero-shot, linear probe) on the same test set."""
    lines = [f"# {context.heading()}", "", context.what_ran()]
    if context.references:
        lines += ["", "Reference rows on the same test images (top-1 / top-5 %):", ""]
        lines += [f"- {name}: {top1:.2f} / {top5:.2f}" for name, top1, top5 in context.references]
    labels = context.labels(cells)
    best = (context.best_prior.set_index("image_ratio")
            if context.best_prior is not None and len(context.best_prior) else None)
    for selection, group in cells.groupby("selection", sort=False):
        extra = best is not None and selection == "class_balanced"  # the few-shot budgets' rule
        lines += ["", f"## selection: {selection}", "",
                  "| (image, text) % | " + " | ".join(
                      f"{label} (ours / paper / diff)" for label in labels.values())
                  + (f" | best text prior, {context.prior} (method chosen by CV on the kept "
                     "images)" if extra else "") + " |",
                  "|---|" + "---|" * (len(labels) + extra)]
        for ratio in range(100, -1, -10):
            row = [f"({ratio}, {100 - ratio})"]
            for source in labels:
                hit = group[(group["image_ratio"] == ratio) & (group["text_source"] == source)]
                if hit.empty:
                    row.append("-")
                    continue
                cell = hit.iloc[0]
                std = "" if pd.isna(cell["top1_std"]) else f" ± {cell['top1_std']:.2f}"
                row.append(f"{cell['top1']:.2f}{std} / {format_number(cell['paper_top1'])} / "
                           f"{format_number(cell['diff_top1'], '{:+.2f}')}")
            if extra:
                row.append(_best_cell(best, ratio))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _best_cell(best: pd.DataFrame, ratio: int) -> str:
    if ratio not in best.index:
        return "-"
    cell = best.loc[ratio]
    std = "" if pd.isna(cell["top1_std"]) else f" ± {cell['top1_std']:.2f}"
    return f"{cell['top1']:.2f}{std} ({cell['method']})"


def plot_series(cells: pd.DataFrame, selection: str) -> dict[str, pd.DataFrame]:
    """Per text source, (image_ratio, top1) points: the lines of the Table-1 plot."""
    chosen = cells[cells["selection"] == selection]
    return {source: chosen[chosen["text_source"] == source][["image_ratio", "top1"]]
            .sort_values("image_ratio", ignore_index=True) for source in PAPER_SOURCES}


# (dashes, marker) of each text source's line: ours solid and filled (the ablation's dotted),
# the paper's (CUB) dash-dotted, dashed or dash-dot-dotted and open: no two lines share a dash
# pattern and a marker (the paper's captions and LLM lines nearly coincide)
OUR_LINES = {"none": (SOLID, "o"), "captions": (SOLID, "s"), "descriptions": (SOLID, "^"),
             "captions_unmapped": (DOTTED, "v"), "descriptions_unmapped": (DOTTED, "D")}
PAPER_LINES = {"none": (DASH_DOT, "o"), "captions": (DASHED, "s"),
               "descriptions": (DASH_DOT_DOT, "^")}
COLOURS = {"none": "tab:blue", "captions": "tab:orange", "descriptions": "tab:green",
           "captions_unmapped": "tab:orange", "descriptions_unmapped": "tab:green"}


def table1_figure(cells: pd.DataFrame, selection: str, context: RunContext = RunContext()):
    """Accuracy vs image ratio, one solid line per text source (a ± std band over seeds), the
    paper's beside it in another dash pattern and marker; title and legend inside the figure."""
    chosen = cells[cells["selection"] == selection]
    labels = context.labels(cells)
    fig, ax = new_figure(8, 5.5)
    for source in labels:
        colour = COLOURS[source]
        points = chosen[chosen["text_source"] == source].sort_values("image_ratio")
        ax.plot(points["image_ratio"], points["top1"], color=colour,
                label=f"{labels[source]} (ours)", **line_style(*OUR_LINES[source]))
        if points["top1_std"].notna().any():  # several seeds: a ± std band
            ax.fill_between(points["image_ratio"], points["top1"] - points["top1_std"],
                            points["top1"] + points["top1_std"], color=colour, alpha=0.15, lw=0)
        paper = sorted((r, v) for (r, s), v in TABLE1.get(selection, {}).items()
                       if s == source and context.paper)
        if paper:
            ax.plot(*zip(*paper), color=colour, alpha=0.8, lw=1.3,
                    label=f"{source_label(source, PAPER_TEXT_KIND)} (paper, CUB)",
                    **line_style(*PAPER_LINES[source], filled=False))
    ax.set_xlabel("image ratio (%)")
    ax.set_ylabel("top-1 accuracy (%)")
    on = f", {context.backbone}" if context.backbone else ""
    ax.set_title(wrap_title(f"{context.dataset}{on}: accuracy vs image ratio ({selection} "
                            "selection)", fig), fontsize=TITLE_SIZE)
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    legend_under(fig, *ax.get_legend_handles_labels())
    return fig


def table1_png(cells: pd.DataFrame, selection: str, context: RunContext = RunContext()) -> bytes:
    """`table1_figure` as PNG bytes: the report writes them and inlines the same bytes in its
    HTML."""
    return figure_png(table1_figure(cells, selection, context))
