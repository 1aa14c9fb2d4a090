"""The `report` stage's entry: Table 1 of every adapter backbone and the zero-shot baselines of
every backbone, ours beside the published numbers, each table saying what was run.

Files: table1.csv (backbone, method, image_ratio, text_ratio, text_source, selection, top1, top5,
...), table1.md, fewshot.csv and fewshot.md (every few-shot method x image budget, mean ± std
over seeds, the paper's adapter beside them), zeroshot.csv and zeroshot.md (SPEC section 4's
comparison, one row per backbone and baseline), summary.html (one self-contained page: the
tables with coloured differences, the plots and the CBD explanation pictures inlined),
figures/table1_<backbone>_<selection>.png (accuracy vs image ratio, the paper's curves dashed),
figures/fewshot_<backbone>.png (top-1 vs budget per method) and plot/<source>.csv (the first
adapter backbone's lines at `report.plot_selection`, as DVC plot data). Each Markdown file ends
with, and the page shows after Table 1, what wrote the description sets they use (`provenance`:
model, server, prompt, temperature, samples, from each table's fgvc.made_by).
"""

from __future__ import annotations

import dataclasses
import html
from pathlib import Path

import pandas as pd

from pipeline.common import write_bytes, write_text
from pipeline.data.reference_names import DATASET_NAMES
from pipeline.report.few_shot import (NO_PRIOR, best_text_prior, few_shot_html,
                                      few_shot_markdown, few_shot_png, few_shot_table)
from pipeline.report.labels import text_kind
from pipeline.report.provenance import provenance_html, provenance_markdown, provenance_table
from pipeline.report.settings import Report
from pipeline.report.summary import diff_style, png_data_uri, summary_html
from pipeline.report.tables import (NO_QFORMER, RunContext, plot_series, selections, table1,
                                    table1_markdown, table1_png)
from pipeline.report.zeroshot import (METHOD_LABELS, zero_shot_html, zero_shot_markdown,
                                      zero_shot_table)

PAPER_METHOD = "linear"  # Table 1 is the paper's linear adapter


@dataclasses.dataclass(frozen=True)
class ZeroShotRun:
    """One backbone's zeroshot output: its results, run.json, and its pictures' PNG bytes."""

    results: pd.DataFrame
    run: dict
    pictures: dict[str, bytes]  # file name -> PNG


@dataclasses.dataclass
class ReportFiles:
    files: dict[str, str | bytes]  # path relative to the report folder -> content
    lines: list[str]  # what to say

    def save(self, folder: Path) -> None:
        for name, content in self.files.items():
            (write_bytes if isinstance(content, bytes) else write_text)(Path(folder) / name,
                                                                        content)


def describe_set(name: str, entry: dict) -> str:
    """'attributes (attribute sentences, 4 attribute(s) per sentence)', 'cbd (LLM descriptions,
    prompt cbd)'. entry: its `Describe.provenance` (`prompt` already in words), or a bare
    describe entry."""
    details = [text_kind(entry.get("backend"))]
    prompt = entry.get("prompt")
    if prompt:
        details.append(prompt if " " in prompt else f"prompt {prompt}")
    elif entry.get("path"):
        details.append(f"file {Path(entry['path']).name}")
    return f"{name} ({', '.join(details)})"


def build_report(adapters: dict[str, pd.DataFrame], zeroshot: dict[str, ZeroShotRun],
                 described: dict[str, dict], adapter_descriptions: str, paper: bool,
                 settings: Report, reference_only: bool = False,
                 qformer: bool = True, made_by: dict[str, dict] | None = None) -> ReportFiles:
    """The report of `adapters` (adapter backbone -> its evaluate results) and `zeroshot`
    (every backbone -> its run), given how each description set was made (`described`: set ->
    its describe entry), the adapters' description set, and whether the published numbers are
    about this dataset (`paper`: CUB; `reference_only`: shown, but only as a reference, their
    differences not coloured: the demo's made-up world in CUB's layout); `qformer` False: no
    Q-Former was trained (no COCO), and every Table 1 says so (`NO_QFORMER`). made_by: set ->
    its descriptions table's `fgvc.made_by` ({} where the table has none): each output that uses
    description sets says what wrote them (model, server, prompt, temperature, samples)."""
    files, blocks, tables, lines = {}, [], [], []
    made_by = made_by or {}
    entry = described[adapter_descriptions]
    for number, (backbone, results) in enumerate(adapters.items()):
        run = zeroshot[backbone].run
        context = RunContext(
            dataset=run["dataset"], test_images=run["test_images"], backbone=backbone,
            clip=f"{run['model']} ({run['pretrained'] or 'trained here'})",
            text_label=text_kind(entry["backend"]),
            descriptions=describe_set(adapter_descriptions, entry),
            references=tuple((f"{METHOD_LABELS.get(row.method, row.method)}: {row.variant}",
                              float(row.top1), float(row.top5))
                             for row in zeroshot[backbone].results.itertuples()),
            paper=paper, colour_diffs=not reference_only,
            best_prior=best_text_prior(results, adapter_descriptions),
            prior=adapter_descriptions, qformer=qformer)
        # The published numbers are CUB's: beside another target's they would mislead.
        cells = table1(results[results["method"] == PAPER_METHOD], **({} if paper else
                                                                       {"paper": {}}))
        figures = {selection: table1_png(cells, selection, context)
                   for selection in selections(cells)}
        files.update({f"figures/table1_{backbone}_{selection}.png": png
                      for selection, png in figures.items()})
        blocks.append((cells, context, figures))
        tables.append(cells.assign(backbone=backbone, method=PAPER_METHOD))
        if number == 0:  # the first adapter backbone's lines
            if settings.plot_selection not in selections(cells):
                lines.append(f"warning: report.plot_selection '{settings.plot_selection}' was "
                             "not trained (train_adapter.selection): the DVC plot data will be "
                             "empty")
            for source, points in plot_series(cells, settings.plot_selection).items():
                files[f"plot/{source}.csv"] = points.to_csv(index=False, float_format="%.2f")
    cells = pd.concat(tables, ignore_index=True)
    cells = cells[["backbone", "method"] + [c for c in cells if c not in ("backbone", "method")]]
    # 4 decimals: `--compare` computes B - A from these (2 made one change -1.66 here, -1.67 there)
    files["table1.csv"] = cells.to_csv(index=False, float_format="%.4f")
    priors = [p for results in adapters.values() if "prior" in results
              for p in results["prior"].dropna().unique() if p != NO_PRIOR]
    adapter_sets = list(dict.fromkeys([adapter_descriptions, *priors]))
    files["table1.md"] = "\n".join(table1_markdown(block_cells, context)
                                   for block_cells, context, _ in blocks) + _made_by_md(
                                       made_by, adapter_sets)
    baselines = pd.concat([run.results for run in zeroshot.values()], ignore_index=True)
    baseline_table = zero_shot_table(baselines, described, published=paper)
    first = next(iter(zeroshot.values())).run
    what_ran = (f"Dataset: {first['dataset']}, {first['test_images']} test images (chance "
                f"{100 / first['classes']:.1f}%). Description sets: "
                + "; ".join(describe_set(name, described[name]) for name in first["descriptions"])
                + ". Template sets: " + ", ".join(f"{name} ({count})" for name, count
                                                   in first["templates"].items())
                + f". Class names: {first.get('class_names', DATASET_NAMES)}.")
    files["zeroshot.csv"] = baseline_table.to_csv(index=False, float_format="%.2f")
    files["zeroshot.md"] = zero_shot_markdown(baseline_table, what_ran) + _made_by_md(
        made_by, list(first["descriptions"]))
    sections = [("Zero-shot baselines per backbone, ours vs the published numbers",
                 f"<p>{html.escape(what_ran)}</p>" + zero_shot_html(baseline_table, diff_style))]
    for backbone in adapters:
        pictures = _pictures_html(zeroshot[backbone])
        if pictures:
            sections.append((f"Why CBD decided: test images of {backbone}", pictures))
    few_shot = _few_shot(adapters, zeroshot, files, text_kind(entry["backend"]))
    if few_shot:
        sections.insert(0, few_shot)
        files["fewshot.md"] += _made_by_md(made_by, adapter_sets)
    every = list(dict.fromkeys([*adapter_sets, *first["descriptions"]]))
    if every:
        sections.insert(0, ("Description sets: what wrote them", provenance_html(provenance_table(
            {name: made_by.get(name, {}) for name in every}))))
    files["summary.html"] = summary_html(blocks, sections)
    if not qformer:
        lines.append(NO_QFORMER)
    lines.append(f"{len(cells)} cells of {len(adapters)} adapter backbone(s), "
                 f"{len(baseline_table)} zero-shot rows ({len(zeroshot)} backbones)")
    return ReportFiles(files, lines)


def _made_by_md(made_by: dict[str, dict], names: list[str]) -> str:
    """The provenance of the description sets `names`, a Markdown block to end a file."""
    return "\n" + provenance_markdown(provenance_table({n: made_by.get(n, {}) for n in names}))


def _few_shot(adapters: dict[str, pd.DataFrame], zeroshot: dict[str, ZeroShotRun],
              files: dict, kind: str) -> tuple[str, str] | None:
    """fewshot.csv, fewshot.md and a plot per backbone into `files` (the two tables say so where
    no few-shot method was trained: DVC expects them); the HTML section, or None."""
    tables, markdown, body = [], [], []
    for backbone, results in adapters.items():
        table = few_shot_table(results)
        if table.empty:
            continue
        run = zeroshot[backbone].run
        heading = f"{run['dataset']}, backbone {backbone}: few-shot methods x image budget"
        png = few_shot_png(table, heading, kind)
        files[f"figures/fewshot_{backbone}.png"] = png
        tables.append(table.assign(backbone=backbone))
        markdown.append(few_shot_markdown(table, heading, kind))
        body += [f"<h3>{html.escape(heading)}</h3>", few_shot_html(table, kind),
                 f'<p><img alt="few-shot plot, {html.escape(backbone)}" '
                 f'src="{png_data_uri(png)}"></p>']
    if not tables:
        files["fewshot.csv"] = "backbone,method,budget,shots,image_ratio,top1,top1_std,seeds\n"
        files["fewshot.md"] = ("# Few-shot methods\n\nNone was trained: train_adapter.methods "
                               "names only the paper's `linear`.\n")
        return None
    table = pd.concat(tables, ignore_index=True)
    files["fewshot.csv"] = table[["backbone"] + [c for c in table if c != "backbone"]].to_csv(
        index=False, float_format="%.2f")
    files["fewshot.md"] = "# Few-shot methods, text as a prior\n\n" + "\n".join(markdown)
    return ("Few-shot methods per backbone (top-1 %, mean ± std over seeds; selection on the "
            "kept images only)", "\n".join(body))


def _pictures_html(run: ZeroShotRun) -> str:
    """A backbone's CBD explanation pictures, inlined."""
    return "\n".join(f'<p><img alt="CBD explanation of test image {picture["image_id"]}" '
                     f'src="{png_data_uri(run.pictures[picture["file"]])}"></p>'
                     for picture in run.run.get("pictures", []))
