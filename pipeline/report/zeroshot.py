"""The zero-shot baselines (SPEC section 4) per backbone, ours beside the published numbers.

A row of ours meets a published column by what it ran: CLIP with the paper's template set; CBD
with a description set from CBD's prompt or CBD's published descriptor file; "domain examples"
and "improved" with the reproduction study's two prompts; WaffleCLIP's with a `waffle` control
(no concept prefix) and its shuffled control. Published numbers exist for the openai weights of
a few backbones only; every other row shows "-" there. A control set's row is the mean ± std
over its draws.
"""

from __future__ import annotations

import html

import pandas as pd

from pipeline.report.labels import source_text
from pipeline.report.paper import ZERO_SHOT, ZERO_SHOT_LABELS, ZERO_SHOT_PRETRAINED
from pipeline.report.summary import scroll_box
from pipeline.report.tables import format_number

ZERO_SHOT_COLUMNS = ["backbone", "model", "pretrained", "method", "variant", "source", "prompt",
                     "published_as", "top1", "top1_std", "paper_top1", "diff_top1", "top5",
                     "top5_std", "paper_top5", "diff_top5", "draws"]
METHOD_LABELS = {"clip": "CLIP zero-shot", "cbd": "CBD", "cupl": "CuPL (mean embedding)",
                 "linear_probe": "linear probe"}
PAPER_TEMPLATE_SET = "paper"  # prompts/templates/paper.yaml: the published CLIP row's template
WAFFLE_CONCEPT = "bird"  # WaffleCLIP's CUB concept ("A photo of a bird: a ...")
WAFFLE_PAIRS = 15  # its waffle_count: the published rows' pairs of random descriptors


def published_as(method: str, variant: str, description_set: dict | None,
                 real_sets: dict[str, dict] | None = None) -> str | None:
    """The published column a row of ours reproduces (a ZERO_SHOT key), if any.
    description_set: the describe.sets, files or controls entry of a CBD row ({backend, prompt,
    path, ...}); real_sets: every set's entry by name (a control's real set, `of`)."""
    if method == "clip":
        return "clip" if variant == PAPER_TEMPLATE_SET else None
    if method != "cbd" or description_set is None:
        return None
    if description_set.get("backend") == "control":  # WaffleCLIP's, of CBD's descriptor file
        kind, concept = description_set.get("kind"), description_set.get("concept")
        if (real_sets or {}).get(description_set.get("of"), {}).get("backend") != "cbd_json":
            return None
        if kind == "shuffled":
            return kind
        if kind == "waffle" and description_set.get("pairs") == WAFFLE_PAIRS and concept in (
                None, WAFFLE_CONCEPT):
            return "waffle" if concept is None else "waffle_concept"
        return None
    if description_set.get("backend") == "cbd_json":
        return "cbd"
    if description_set.get("backend") == "openai":
        # a bare entry's prompt ('cbd') or its provenance's, in words ('prompt cbd')
        prompt = str(description_set.get("prompt") or "").removeprefix("prompt ")
        return {"cbd": "cbd", "cbd_domain": "domain",
                "cbd_domain_background": "improved"}.get(prompt)
    return None


def zero_shot_table(results: pd.DataFrame, description_sets: dict[str, dict],
                    published: bool = True) -> pd.DataFrame:
    """One row per (backbone, baseline) with the published top-1 / top-5 and the differences.
    results: the zeroshot stages' results.parquet rows, all backbones, in the order to show.
    published: False for a dataset the published numbers (CUB's) are not about."""
    table = results.copy()
    for column, missing in (("top1_std", float("nan")), ("top5_std", float("nan")),
                            ("draws", 1)):
        if column not in table:  # results of a zeroshot stage before control sets
            table[column] = missing
    table["published_as"] = [published_as(m, v, description_sets.get(v) if m == "cbd" else None,
                                          description_sets) if published else None
                             for m, v in zip(table["method"], table["variant"])]
    for k, i in (("top1", 0), ("top5", 1)):
        table[f"paper_{k}"] = [
            ZERO_SHOT.get(model, {}).get(column, (None, None))[i]
            if column and pretrained == ZERO_SHOT_PRETRAINED else None
            for model, pretrained, column in zip(table["model"], table["pretrained"],
                                                 table["published_as"])]
        table[f"paper_{k}"] = table[f"paper_{k}"].astype(float)
        table[f"diff_{k}"] = table[k] - table[f"paper_{k}"]
    table["source"] = table["source"].map(source_text)  # the report's words for text sources
    orders = {"method": {m: i for i, m in enumerate(METHOD_LABELS)},
              "backbone": {b: i for i, b in enumerate(dict.fromkeys(table["backbone"]))}}
    table = table.sort_values(["backbone", "method"], key=lambda c: c.map(orders[c.name]),
                              kind="stable", ignore_index=True)  # backbones as given
    return table[ZERO_SHOT_COLUMNS]


def _row_label(row) -> str:
    label = f"{METHOD_LABELS.get(row['method'], row['method'])}: {row['variant']}"
    if isinstance(row["published_as"], str):
        label += f" (= {ZERO_SHOT_LABELS[row['published_as']]})"
    return label


def _ours(row, k: str) -> str:
    """'52.40', or '52.40 ± 0.11' over a control set's draws."""
    return (f"{row[k]:.2f} ± {row[f'{k}_std']:.2f}" if pd.notna(row[f"{k}_std"])
            else f"{row[k]:.2f}")


def zero_shot_markdown(table: pd.DataFrame, what_ran: str) -> str:
    """SPEC section 4's comparison as Markdown: per backbone, one line per baseline."""
    lines = ["# Zero-shot baselines: top-1 / top-5 %, ours vs the published numbers", "",
             what_ran, "",
             "| backbone | baseline | source / prompt | top-1 ours / paper / diff "
             "| top-5 ours / paper / diff |", "|---|---|---|---|---|"]
    for _, row in table.iterrows():
        lines.append(
            f"| {row['backbone']} ({row['model']}, {row['pretrained']}) | {_row_label(row)} | "
            f"{row['source']}: {row['prompt']} | "
            f"{_ours(row, 'top1')} / {format_number(row['paper_top1'])} / "
            f"{format_number(row['diff_top1'], '{:+.2f}')} | {_ours(row, 'top5')} / "
            f"{format_number(row['paper_top5'])} / {format_number(row['diff_top5'], '{:+.2f}')} |")
    return "\n".join(lines) + "\n"


def zero_shot_html(table: pd.DataFrame, diff_style) -> str:
    """The same table for summary.html; diff_style(diff) colours a difference cell."""
    head = ("<tr><th>backbone</th><th>baseline</th><th>source / prompt</th>"
            "<th>top-1</th><th>paper</th><th>diff</th><th>top-5</th><th>paper</th><th>diff</th>"
            "</tr>")
    rows = []
    for _, row in table.iterrows():
        cells = [f'<td class="text">{html.escape(str(row["backbone"]))} '
                 f'({html.escape(str(row["model"]))}, {html.escape(str(row["pretrained"]))})</td>',
                 f'<td class="text">{html.escape(_row_label(row))}</td>',
                 f'<td class="text">{html.escape(f"{row.source}: {row.prompt}")}</td>']
        for k in ("top1", "top5"):
            cells.append(f"<td>{_ours(row, k)}</td><td>{format_number(row[f'paper_{k}'])}</td>"
                         f"<td{diff_style(row[f'diff_{k}'])}>"
                         f"{format_number(row[f'diff_{k}'], '{:+.2f}')}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    # in a box that scrolls sideways: top-1 and top-5 never leave the screen with the page
    return scroll_box(f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows)
                      + "\n</tbody>\n</table>")
