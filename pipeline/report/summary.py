"""The report as one self-contained HTML page: Table 1 per selection with the differences to
the paper coloured, and the plots inlined as data URIs, so the single file can be mailed,
attached to a pull request or opened from a DVC remote without anything beside it.

Laid out for a 1,280-1,600 px screen: the page is at most 100em (1,600 px) wide, every table
sits in a box of its own that scrolls sideways (`scroll_box`) rather than pushing the page
wider, long text cells wrap (`td.text`), and figures shrink to the page (max-width: 100%).
tests/test_browser.py checks that in headless Chromium at 1,400 px.
"""

from __future__ import annotations

import base64
import html

import pandas as pd

from pipeline.report.tables import RunContext, format_number, selections

# A difference of this many points (or more) gets the strongest colour.
FULL_COLOUR_AT = 10.0

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; padding: 0 1em;
       max-width: 100em; color: #222; }
div.scroll { overflow-x: auto; max-width: 100%; margin: 1em 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
td { white-space: nowrap; }
th { background: #f3f3f3; }
td.ratio { text-align: left; white-space: nowrap; }
td.text { text-align: left; white-space: normal; min-width: 6em; max-width: 22em;
          overflow-wrap: anywhere; }
td.missing { color: #aaa; text-align: center; }
.note { color: #555; }
img { max-width: 100%; height: auto; }
"""


def diff_style(diff: float | None) -> str:
    """Green where we beat the paper, red where we fall short, deeper the larger the gap."""
    if diff is None or pd.isna(diff):
        return ""
    alpha = 0.12 + 0.6 * min(abs(diff) / FULL_COLOUR_AT, 1.0)
    rgb = "46, 160, 67" if diff >= 0 else "215, 58, 73"
    return f' style="background: rgba({rgb}, {alpha:.2f})"'


def scroll_box(table: str) -> str:
    """A table in a box of its own that scrolls sideways where the table is wider than the
    page, so a wide table never pushes the page (and the columns after it) off the screen."""
    return f'<div class="scroll">{table}</div>'


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def seeds_note(cells: pd.DataFrame) -> str:
    """How many seeds each cell averages, and so whether the ± figures mean anything."""
    seeds = int(cells["seeds"].max())
    if seeds > 1:
        return (f"Each of our cells is the mean ± standard deviation over {seeds} seeds "
                f"(train_adapter.seeds).")
    return "One seed per cell: set several train_adapter.seeds for mean ± standard deviation."


def table1_html(cells: pd.DataFrame, selection: str, context: RunContext = RunContext()) -> str:
    """One selection's Table 1: a row per (image, text) ratio, (ours, paper, diff) per source."""
    group = cells[cells["selection"] == selection].set_index(["image_ratio", "text_source"])
    labels = context.labels(cells)
    head = ('<tr><th rowspan="2">(image, text) %</th>'
            + "".join(f'<th colspan="3">{html.escape(label)}</th>' for label in labels.values())
            + "</tr><tr>" + ("<th>ours</th><th>paper</th><th>diff</th>" if context.colour_diffs
                             else "<th>ours</th><th>CUB's paper (reference)</th><th>diff</th>")
            * len(labels) + "</tr>")
    rows = []
    for ratio in range(100, -1, -10):
        row = [f'<td class="ratio">({ratio}, {100 - ratio})</td>']
        for source in labels:
            if (ratio, source) not in group.index:
                row.append('<td class="missing" colspan="3">-</td>')
                continue
            cell = group.loc[(ratio, source)]
            std = "" if pd.isna(cell["top1_std"]) else f" ± {cell['top1_std']:.2f}"
            style = diff_style(cell["diff_top1"]) if context.colour_diffs else ""
            row.append(f"<td>{cell['top1']:.2f}{std}</td><td>{format_number(cell['paper_top1'])}</td>"
                       f"<td{style}>{format_number(cell['diff_top1'], '{:+.2f}')}</td>")
        rows.append("<tr>" + "".join(row) + "</tr>")
    return scroll_box(f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows)
                      + "\n</tbody>\n</table>")


def references_html(context: RunContext) -> str:
    """The zero-shot and linear-probe rows on the same test images, beside Table 1."""
    if not context.references:
        return ""
    rows = "".join(f'<tr><td class="ratio">{html.escape(name)}</td><td>{top1:.2f}</td>'
                   f"<td>{top5:.2f}</td></tr>" for name, top1, top5 in context.references)
    return ("<p>Reference rows on the same test images:</p>\n" + scroll_box(
        "<table><thead><tr><th>baseline</th><th>top-1</th><th>top-5</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"))


def summary_html(blocks: list[tuple[pd.DataFrame, RunContext, dict[str, bytes]]],
                 sections: list[tuple[str, str]] = (), title: str = "") -> str:
    """The whole summary page. blocks: per adapter backbone, its `table1()` cells, what they
    were made from, and the PNG bytes of its plot per selection; sections: more (heading, HTML
    body) after Table 1, e.g. the zero-shot baselines."""
    title = title or (blocks[0][1].heading() if blocks else "fgvc report")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>fgvc: {html.escape(title)}</title>", f"<style>{STYLE}</style>",
             "</head><body>"]
    for cells, context, figures in blocks:
        parts += [f"<h1>{html.escape(context.heading())}</h1>",
                  f"<p>{html.escape(context.what_ran())}</p>", references_html(context),
                  f'<p class="note">{html.escape(seeds_note(cells))} diff = ours − paper, '
                  "green where ours is higher, red where it is lower. The paper's numbers are "
                  "on CUB-200-2011; its class-balanced numbers are its own, the global ones are "
                  "Hirano's earlier method.</p>"]
        for selection in selections(cells):
            name = html.escape(selection)
            parts += [f"<h2>selection: {name}</h2>", table1_html(cells, selection, context)]
            if selection in figures:
                parts.append(f'<p><img alt="Table 1 plot, {html.escape(context.backbone)}, '
                             f'{name} selection" src="{png_data_uri(figures[selection])}"></p>')
    for heading, body in sections:
        parts += [f"<h2>{html.escape(heading)}</h2>", body]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
