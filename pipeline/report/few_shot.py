"""The few-shot table: every adapter method (a text-prior method once per prior set) x every
image budget (k shots, ratios), top-1 mean ± std over the seeds, with the paper's adapter at the
same ratios beside them (image only, and with the description set through the Q-Former: Table
1's columns), and its plot (top-1 against budget per method, shots on a log scale)."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from pipeline.report.labels import DESCRIPTIONS, source_label
from pipeline.report.plots import (DASHED, DOTTED, MARKERS, SOLID, TITLE_SIZE, figure_png,
                                   legend_under, line_style, new_figure, wrap_title)
from pipeline.report.summary import scroll_box

METHOD_LABELS = {
    "linear:none": f"paper's adapter, {source_label('none')}",
    # its description set's kind filled in by `label` (pipeline.report.labels)
    "linear:descriptions": "paper's adapter, {descriptions} (Q-Former)",
    "probe": "linear probe (CLIP's protocol)",
    "ensemble": "probe + alpha x zero-shot (output ensemble)",
    "text_prior": "probe pulled to text prototypes",
    "tip": "Tip-Adapter",
    "tip_f": "Tip-Adapter-F",
    "zs_lp": "ZS-LP",
    "clap": "CLAP",
    "lp_pp": "LP++",
}
TEXT_FREE = ("linear:none", "probe")  # image only: what text is judged against
# pipeline.adapter.methods.NO_PRIOR (a test holds them equal): the report reads evaluate's tables
# and imports nothing of the adapters, so that their code is no dependency of the report stage
NO_PRIOR = "none"


def few_shot_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, prior, budget): top1 mean and std over seeds, seeds, shots,
    image_ratio. results: an `evaluate` results table (one row per trained run, `method` naming
    its method, `prior` the description set a text-prior method took its prior from). Empty
    when no few-shot method was trained."""
    few = results[(results["method"] != "linear") & results["budget"].notna()] \
        if "budget" in results else results.iloc[:0]
    if few.empty:
        return pd.DataFrame(columns=["method", "prior", "budget", "shots", "image_ratio", "top1",
                                     "top1_std", "seeds"])
    if "prior" not in few:
        few = few.assign(prior=NO_PRIOR)
    rows = [few]
    paper = results[(results["method"] == "linear") & (results["selection"] == "class_balanced")
                    & (results["text_mapping"] == "qformer")]
    ratios = set(few["image_ratio"].dropna())
    for source in ("none", "descriptions"):
        cells = paper[(paper["text_source"] == source) & paper["image_ratio"].isin(ratios)]
        rows.append(cells.assign(method=f"linear:{source}", prior=NO_PRIOR, shots=np.nan,
                                 budget=cells["image_ratio"].map(lambda r: f"{int(r)}%")))
    table = (pd.concat(rows, ignore_index=True)
             .groupby(["method", "prior", "budget"], as_index=False, sort=False)
             .agg(shots=("shots", "first"), image_ratio=("image_ratio", "first"),
                  top1=("top1", "mean"), top1_std=("top1", "std"), seeds=("seed", "nunique")))
    order = {name: i for i, name in enumerate(METHOD_LABELS)}
    table["_method"] = table["method"].map(lambda m: order.get(m, len(order)))
    table["_budget"] = [s if pd.notna(s) else 1000 + r
                        for s, r in zip(table["shots"], table["image_ratio"])]
    priors = {name: i for i, name in enumerate(table["prior"].unique())}  # as trained
    table["_prior"] = table["prior"].map(priors)
    return (table.sort_values(["_method", "_prior", "_budget"], kind="stable")
            .drop(columns=["_method", "_prior", "_budget"]).reset_index(drop=True))


def best_text_prior(results: pd.DataFrame, prior: str) -> pd.DataFrame:
    """Table 1's extra column: at each image ratio, the text-prior method (with `prior`) whose
    hyper-parameters scored best under cross-validation on the kept images (`cv_top1`, mean
    over seeds; ties: the first trained), with its test top-1 mean and std. Chosen without the
    test split: the candidates are the methods that cross-validate something (a method that
    chooses nothing has no `cv_top1`), and a ratio where no run could be cross-validated has no
    entry. Columns: image_ratio, method, top1, top1_std, seeds, cv_top1."""
    columns = ["image_ratio", "method", "top1", "top1_std", "seeds", "cv_top1"]
    if not {"budget", "prior", "cv_top1"} <= set(results):
        return pd.DataFrame(columns=columns)
    runs = results[results["budget"].notna() & results["shots"].isna()
                   & (results["prior"] == prior)]
    stats = (runs.groupby(["image_ratio", "method"], sort=False)
             .agg(cv_top1=("cv_top1", "mean"), top1=("top1", "mean"),
                  top1_std=("top1", "std"), seeds=("seed", "nunique"))
             .dropna(subset=["cv_top1"]).reset_index())
    if stats.empty:
        return pd.DataFrame(columns=columns)
    best = stats.loc[stats.groupby("image_ratio", sort=False)["cv_top1"].idxmax()]
    return best.astype({"image_ratio": int})[columns].reset_index(drop=True)


def budgets_in_order(table: pd.DataFrame) -> list[str]:
    """k-shot budgets ascending, then ratios ascending."""
    first = table.drop_duplicates("budget")
    key = [s if pd.notna(s) else 1000 + r for s, r in zip(first["shots"], first["image_ratio"])]
    return [b for _, b in sorted(zip(key, first["budget"]))]


def label(method: str, prior: str = NO_PRIOR, texts: str = DESCRIPTIONS) -> str:
    """A row's name; texts: what the adapters' description set holds ('attribute sentences')."""
    name = METHOD_LABELS.get(method, method).replace("{descriptions}",
                                                     source_label("descriptions", texts))
    return name if prior == NO_PRIOR else f"{name}, {prior} prior"


def cell_text(row) -> str:
    std = "" if pd.isna(row.top1_std) else f" ± {row.top1_std:.1f}"
    return f"{row.top1:.1f}{std}"


def few_shot_markdown(table: pd.DataFrame, heading: str, texts: str = DESCRIPTIONS) -> str:
    """Methods as rows, budgets as columns, 'mean ± std' cells; the best of a column in bold."""
    budgets = budgets_in_order(table)
    best = table.groupby("budget")["top1"].max()
    lines = [f"## {heading}", "", "top-1 %, mean ± std over the seeds "
             "(train_adapter.budgets.seeds); every hyper-parameter chosen on the budget's kept "
             "images only.", "",
             "| method | " + " | ".join(budgets) + " |", "|---|" + "---|" * len(budgets)]
    for (method, prior), group in table.groupby(["method", "prior"], sort=False):
        cells = {row.budget: (f"**{cell_text(row)}**" if row.top1 == best[row.budget]
                              else cell_text(row)) for row in group.itertuples()}
        lines.append(f"| {label(method, prior, texts)} | "
                     + " | ".join(cells.get(b, "-") for b in budgets) + " |")
    return "\n".join(lines) + "\n"


def few_shot_html(table: pd.DataFrame, texts: str = DESCRIPTIONS) -> str:
    budgets = budgets_in_order(table)
    best = table.groupby("budget")["top1"].max()
    head = "".join(f"<th>{html.escape(b)}</th>" for b in budgets)
    rows = []
    for (method, prior), group in table.groupby(["method", "prior"], sort=False):
        cells = {row.budget: row for row in group.itertuples()}
        tds = "".join(
            '<td class="missing">-</td>' if b not in cells else
            f"<td>{'<b>' if cells[b].top1 == best[b] else ''}{html.escape(cell_text(cells[b]))}"
            f"{'</b>' if cells[b].top1 == best[b] else ''}</td>" for b in budgets)
        rows.append(f'<tr><td class="ratio">{html.escape(label(method, prior, texts))}</td>{tds}</tr>')
    return scroll_box(f"<table><thead><tr><th>method</th>{head}</tr></thead><tbody>"
                      f"{''.join(rows)}</tbody></table>")


def few_shot_figure(table: pd.DataFrame, title: str, texts: str = DESCRIPTIONS):
    """Top-1 against budget per method: k shots (log scale) left, ratios right, ± std bands;
    one colour and marker per method, the text-free ones dashed, a later prior's dotted; title
    and legend inside the figure."""
    import matplotlib

    fig, axes = new_figure(11, 5.5, ncols=2, sharey=True)
    priors = [p for p in table["prior"].unique() if p != NO_PRIOR]
    first_prior = priors[0] if priors else NO_PRIOR  # a later prior's lines are dotted
    methods = list(dict.fromkeys(table["method"]))  # one colour per method, whatever its prior
    colours = matplotlib.colormaps["tab10"].colors
    for (method, prior), group in table.groupby(["method", "prior"], sort=False):
        dashes = DASHED if method in TEXT_FREE else DOTTED if prior != first_prior else SOLID
        index = methods.index(method)
        colour = colours[index % len(colours)]
        style = line_style(dashes, MARKERS[index % len(MARKERS)], filled=prior == first_prior
                           or method in TEXT_FREE)
        for ax, column in zip(axes, ("shots", "image_ratio")):
            points = group[group["shots"].notna() == (column == "shots")]
            if points.empty:
                continue
            points = points.sort_values(column)
            ax.plot(points[column], points["top1"], color=colour,
                    label=label(method, prior, texts), **style)
            if points["top1_std"].notna().any():
                ax.fill_between(points[column], points["top1"] - points["top1_std"],
                                points["top1"] + points["top1_std"], color=colour,
                                alpha=0.12, lw=0)
    axes[0].set_xscale("log", base=2)
    shots = sorted(table["shots"].dropna().unique())
    axes[0].set_xticks(shots, [f"{int(k)}" for k in shots])
    axes[0].set_xlabel("images per class (k shots)")
    axes[1].set_xlabel("image ratio (% of each class's train images)")
    axes[0].set_ylabel("top-1 accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
    handles, labels = axes[1].get_legend_handles_labels()
    more = {l: h for h, l in zip(*axes[0].get_legend_handles_labels())}
    merged = dict(zip(labels, handles), **more)
    legend_under(fig, list(merged.values()), list(merged.keys()), columns=3)
    fig.suptitle(wrap_title(title, fig), fontsize=TITLE_SIZE)
    return fig


def few_shot_png(table: pd.DataFrame, title: str, texts: str = DESCRIPTIONS) -> bytes:
    """`few_shot_figure` as PNG bytes."""
    return figure_png(few_shot_figure(table, title, texts))
