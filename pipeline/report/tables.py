"""Table 1 of the paper, ours beside theirs: CSV, Markdown and a plot."""

from __future__ import annotations

import io

import pandas as pd

from pipeline.report.paper import TABLE1

TABLE1_COLUMNS = ["image_ratio", "text_ratio", "text_source", "selection", "top1", "top5"]
SOURCE_LABELS = {"none": "image only", "reed": "image + Reed", "llm": "image + LLM"}


def table1(results: pd.DataFrame) -> pd.DataFrame:
    """One row per Table 1 cell (mean over seeds) with the paper's top-1 beside ours.

    results: one row per adapter run (image_ratio, text_source, selection, seed, top1, top5).
    """
    # ratios are whole percents; a results table with zero-shot rows (no ratio) holds floats
    results = results.astype({"image_ratio": int})
    cells = (results.groupby(["image_ratio", "text_source", "selection"], as_index=False)
             .agg(top1=("top1", "mean"), top5=("top5", "mean"), top1_std=("top1", "std"),
                  seeds=("seed", "nunique")))
    cells["text_ratio"] = 100 - cells["image_ratio"]
    cells["paper_top1"] = [TABLE1.get(s, {}).get((r, t)) for r, t, s in
                           zip(cells["image_ratio"], cells["text_source"], cells["selection"])]
    cells["diff_top1"] = cells["top1"] - cells["paper_top1"]
    return sort_cells(cells)[TABLE1_COLUMNS + ["top1_std", "seeds", "paper_top1", "diff_top1"]]


def sort_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """The paper's reading order: per selection, per text source (image only, Reed, LLM), image
    ratio from 100 down to 0."""
    order = {s: i for i, s in enumerate(SOURCE_LABELS)}
    return cells.sort_values(["selection", "text_source", "image_ratio"],
                             key=lambda col: col.map(order) if col.name == "text_source" else col,
                             ascending=[True, True, False], ignore_index=True)


def selections(cells: pd.DataFrame) -> list[str]:
    """The selections a table holds, in its order (class_balanced, the paper, before global)."""
    return list(dict.fromkeys(cells["selection"]))


def format_number(value: float | None, fmt: str = "{:.2f}") -> str:
    """A table cell: the number, or "-" where there is none (None or NaN)."""
    return "-" if value is None or pd.isna(value) else fmt.format(value)


def table1_markdown(cells: pd.DataFrame, zero_shot: dict[str, float]) -> str:
    """The paper's layout: a row per (image, text) ratio, a column pair (ours, paper) per source."""
    lines = ["# Table 1: CUB top-1 % of the adapter, ours vs the paper", ""]
    lines.append(f"Zero-shot CLIP on the same test set: top-1 {zero_shot['top1']:.2f}, "
                 f"top-5 {zero_shot['top5']:.2f}.")
    for selection, group in cells.groupby("selection", sort=False):
        lines += ["", f"## selection: {selection}", "",
                  "| (image, text) % | " + " | ".join(
                      f"{label} (ours / paper / diff)" for label in SOURCE_LABELS.values()) + " |",
                  "|---|" + "---|" * len(SOURCE_LABELS)]
        for ratio in range(100, -1, -10):
            row = [f"({ratio}, {100 - ratio})"]
            for source in SOURCE_LABELS:
                hit = group[(group["image_ratio"] == ratio) & (group["text_source"] == source)]
                if hit.empty:
                    row.append("-")
                    continue
                cell = hit.iloc[0]
                std = "" if pd.isna(cell["top1_std"]) else f" ± {cell['top1_std']:.2f}"
                row.append(f"{cell['top1']:.2f}{std} / {format_number(cell['paper_top1'])} / "
                           f"{format_number(cell['diff_top1'], '{:+.2f}')}")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_series(cells: pd.DataFrame, selection: str) -> dict[str, pd.DataFrame]:
    """Per text source, (image_ratio, top1) points: the lines of the Table-1 plot."""
    chosen = cells[cells["selection"] == selection]
    return {source: chosen[chosen["text_source"] == source][["image_ratio", "top1"]]
            .sort_values("image_ratio", ignore_index=True) for source in SOURCE_LABELS}


def table1_png(cells: pd.DataFrame, selection: str) -> bytes:
    """Accuracy vs image ratio, one solid line per text source (a ± std band over seeds), the
    paper's dashed beside it.

    PNG bytes rather than a file: the report writes them and inlines the same bytes in its HTML.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = cells[cells["selection"] == selection]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for source, colour in zip(SOURCE_LABELS, ("tab:blue", "tab:orange", "tab:green")):
        points = chosen[chosen["text_source"] == source].sort_values("image_ratio")
        ax.plot(points["image_ratio"], points["top1"], "o-", color=colour,
                label=f"{SOURCE_LABELS[source]} (ours)")
        if points["top1_std"].notna().any():  # several seeds: a ± std band
            ax.fill_between(points["image_ratio"], points["top1"] - points["top1_std"],
                            points["top1"] + points["top1_std"], color=colour, alpha=0.15, lw=0)
        paper = sorted((r, v) for (r, s), v in TABLE1.get(selection, {}).items() if s == source)
        if paper:
            ax.plot(*zip(*paper), "--", color=colour, alpha=0.6, label=f"{SOURCE_LABELS[source]} (paper)")
    ax.set_xlabel("image ratio (%)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"Table 1: accuracy vs image ratio ({selection} selection)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
